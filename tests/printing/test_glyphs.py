"""Exact glyphs in the embedded fonts: Moji_Joho variation sequences, 𠮷, a 行政事務標準文字
(MJ+) character and a town 外字 from their own fonts; missing glyphs raise the alert; and
without the fpdf2 fix the 辻 check turns red."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import uharfbuzz as hb
from pdf_inspect import IssueFactory, glyphs_for, ipamj_name_of

from printing import fpdf_fix
from printing.certificates.juminhyo import JuminhyoItems, render_juminhyo
from printing.errors import MissingGlyph
from printing.fonts import IPAMJ_MINCHO, FontRegistry, FontRole, default_registry
from printing.layout import PrintedDocument, Signer
from shared.model import Household, Resident, TownExport

_FONT = hb.Font(hb.Face(hb.Blob.from_file_path(str(IPAMJ_MINCHO))))


def mj_name(base: str, selector: int | None = None) -> str:
    gid = (
        _FONT.get_variation_glyph(ord(base), selector)
        if selector
        else _FONT.get_nominal_glyph(ord(base))
    )
    assert gid, f"IPAmj has no glyph for {base} {selector}"
    return str(_FONT.get_glyph_name(gid))


def variants(base: str) -> list[str]:
    """The base's default glyph and every Moji_Joho variant IPAmj maps (cmap format 14)."""
    names = [mj_name(base)]
    for selector in range(0xE0100, 0xE01F0):
        gid = _FONT.get_variation_glyph(ord(base), selector)
        if gid:
            names.append(str(_FONT.get_glyph_name(gid)))
    return names


# name -> (sequence as ToUnicode reports it, expected IPAmj glyph, candidates)
NAMES = {
    "辻\U000e0102　太郎": ("辻\U000e0102", "mj025760", variants("辻")),
    "葛\U000e0102西　花子": ("葛\U000e0102", mj_name("葛", 0xE0102), variants("葛")),
    "齋\U000e0103藤　一郎": ("齋\U000e0103", mj_name("齋", 0xE0103), variants("齋")),
    "\U00020bb7田　次郎": ("\U00020bb7", mj_name("\U00020bb7"), variants("\U00020bb7")),
}


def test_reference_glyphs_are_distinct_variants() -> None:
    """Sanity of the fixtures (FACTS.md): the selectors pick a glyph other than the base's
    default, and the Adobe-Japan1 selector U+E0100 is not in IPAmj."""
    assert mj_name("辻", 0xE0102) == "mj025760"
    assert mj_name("辻") == "mj025761"
    for base in ("葛", "齋"):
        assert mj_name(base, 0xE0102 if base == "葛" else 0xE0103) != mj_name(base)
    assert not _FONT.get_variation_glyph(ord("辻"), 0xE0100)


def household_with(export: TownExport, names: list[str]) -> tuple[Household, list[Resident]]:
    household = export.households[0]
    template = next(r for r in export.residents if r.household_id == household.id)
    members = [
        replace(
            template,
            id=f"T{i:04d}",
            name=name,
            relationship="世帯主" if i == 0 else "子",
            removal=None,
        )
        for i, name in enumerate(names)
    ]
    return replace(household, head_id="T0000"), members


def render_names(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
    names: list[str],
) -> PrintedDocument:
    household, members = household_with(exports["15307"], names)
    return render_juminhyo(
        make_issue("15307"),
        household,
        members,
        JuminhyoItems(),
        signers["15307"],
        whole_household=True,
        registry=registry,
    )


def assert_embeds(
    doc: PrintedDocument, sequence: str, expected: str, candidates: list[str]
) -> None:
    glyphs = glyphs_for(doc.pdf, sequence)
    assert glyphs, f"no embedded glyph stands for {sequence!r}"
    for glyph in glyphs:
        assert ipamj_name_of(glyph, candidates) == expected, (sequence, glyph.font)


def test_moji_joho_sequences_and_kichi_embed_exact_ipamj_glyphs(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    doc = render_names(exports, make_issue, signers, registry, list(NAMES))
    for sequence, expected, candidates in NAMES.values():
        assert_embeds(doc, sequence, expected, candidates)
    # the plain 辻 (mj025761) is not what was embedded for 辻 + U+E0102
    assert all(ipamj_name_of(g, ["mj025761"]) is None for g in glyphs_for(doc.pdf, "辻\U000e0102"))


def test_pua_gaiji_come_from_the_gyosei_and_town_fonts(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
    standin_fonts: tuple[Path, dict[str, dict[int, str]]],
) -> None:
    """聖籠町's legacy U+E001 maps to 行政事務標準文字 U+F0A21 (plane 15, the gyosei font);
    its U+E002 stays a Private Use character drawn from the town's own font."""
    built = standin_fonts[1]
    doc = render_names(exports, make_issue, signers, registry, ["\ue001井　四郎", "岩\ue002　三郎"])
    gyosei = glyphs_for(doc.pdf, "\U000f0a21")
    town = glyphs_for(doc.pdf, "\ue002")
    assert gyosei and town
    assert all("Gyosei" in g.font for g in gyosei)
    assert all("Town15307" in g.font for g in town)
    assert ipamj_name_of(gyosei[0], [built["gyosei"][0xF0A21]]) == built["gyosei"][0xF0A21]
    assert ipamj_name_of(town[0], [built["town-15307"][0xE002]]) == built["town-15307"][0xE002]


@pytest.mark.parametrize(
    "name",
    [
        "岩\ue005　五郎",  # legacy 外字 with no mapping and not in the town font
        "辻\U000e0100　六郎",  # Adobe-Japan1 selector: IPAmj has no such sequence
        "\U000f0001田　七郎",  # MJ+ code the 行政事務標準文字 font lacks
    ],
)
def test_a_character_without_glyph_raises_the_alert_and_prints_nothing(
    name: str,
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    with pytest.raises(MissingGlyph) as caught:
        render_names(exports, make_issue, signers, registry, ["本間　一", name])
    alert = caught.value.alert
    assert alert.town_code == "15307"
    assert alert.context == name
    assert "U+" in alert.message and "印刷していません" in alert.message


def test_without_the_fpdf2_fix_the_glyph_check_fails(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    """fpdf2 2.8.9 splits 辻 and U+E0102 into separate fragments: the selector is lost
    (or shaping crashes on the lone selector). Either way the check is red."""
    sequence, expected, candidates = NAMES["辻\U000e0102　太郎"]
    assert fpdf_fix.is_applied()
    with fpdf_fix.disabled():
        assert not fpdf_fix.is_applied()
        with pytest.raises((AssertionError, IndexError)):
            doc = render_names(exports, make_issue, signers, registry, ["辻\U000e0102　太郎"])
            assert_embeds(doc, sequence, expected, candidates)
    assert fpdf_fix.is_applied()
    doc = render_names(exports, make_issue, signers, registry, ["辻\U000e0102　太郎"])
    assert_embeds(doc, sequence, expected, candidates)


def test_fonts_are_opened_once_per_process() -> None:
    assert default_registry() is default_registry()


def test_runs_split_by_font_and_mark_only_selector_runs_for_shaping(
    registry: FontRegistry,
) -> None:
    runs = registry.runs("辻\U000e0102本\U00020bb7", FontRole.BODY, "15307")
    assert [(r.font_key, r.shaped) for r in runs] == [("mj", True), ("ex", False), ("mj", False)]
    assert runs[0].text == "辻\U000e0102"


def test_open_town_reports_missing_gaiji_before_anyone_waits(
    registry: FontRegistry, exports: dict[str, TownExport]
) -> None:
    export = exports["15307"]
    names = [r.name for r in export.residents] + ["岩\ue005"]
    opened = registry.open_town("15307", names, gaiji=export.gaiji)
    assert [a.context for a in opened.alerts] == ["岩\ue005"]
    assert opened.name_subset[:4] in (b"\x00\x01\x00\x00", b"true", b"OTTO")
