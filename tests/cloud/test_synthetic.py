"""The synthetic federation: deterministic, realistic in the ways later code relies on."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from cloud.synthetic import DEFAULT_AS_OF, FEE_KINDS, generate
from cloud.synthetic.names import COMPAT_SURNAMES, IVS_SURNAMES, KICHI_SURNAMES
from cloud.synthetic.numbers import age_on
from renkei.cli import main
from shared.model import (
    FilingStatus,
    GaijiTarget,
    RemovalReason,
    Resident,
    ResidentKind,
    Role,
    TaxKind,
    TownExport,
    is_valid_juminhyo_code,
    is_valid_my_number,
)

AS_OF = DEFAULT_AS_OF
TARGETS = {"15307": 14000, "15405": 4800, "15581": 6200}
SMALL = {"15307": 300, "15405": 150, "15581": 150}
IPAMJ = Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf")
SELECTOR = re.compile("[\U000e0100-\U000e01ef]")
LEGACY = re.compile("[\ue000-\uf8ff]")


@pytest.fixture(scope="module")
def federation() -> list[TownExport]:
    return generate(1)


def living(export: TownExport) -> list[Resident]:
    return [r for r in export.residents if r.removal is None]


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_equal_exports() -> None:
    assert generate(11, SMALL) == generate(11, SMALL)


def test_different_seeds_give_different_exports() -> None:
    first, second = generate(11, SMALL), generate(12, SMALL)
    for a, b in zip(first, second, strict=True):
        assert [r.name for r in a.residents] != [r.name for r in b.residents]
        assert {r.my_number for r in a.residents}.isdisjoint({r.my_number for r in b.residents})


def test_override_scales_only_the_named_town() -> None:
    exports = generate(11, {"15307": 300, "15405": 120})
    sizes = {e.town.code: len(living(e)) for e in exports}
    assert 300 <= sizes["15307"] < 310 and 120 <= sizes["15405"] < 130
    assert sizes["15581"] == pytest.approx(TARGETS["15581"], rel=0.05)


def test_unknown_town_in_override_is_refused() -> None:
    with pytest.raises(ValueError, match="99999"):
        generate(1, {"99999": 10})


def test_gen_twice_writes_byte_identical_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["gen", "--seed", "1", "--out", str(first)]) == 0
    assert main(["gen", "--seed", "1", "--out", str(second)]) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert {f.parts[0] for f in files} == set(TARGETS)
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_gen_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gen", "--out", str(tmp_path), "--as-of", "26/11/2026"]) == 1
    assert main(["gen", "--out", str(tmp_path), "--residents", "10", "--town", "1"]) == 1
    assert "--town" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_written_export_reads_back(tmp_path: Path) -> None:
    from shared.export_csv import read_town, write_export

    exports = generate(11, SMALL)
    write_export(exports, tmp_path)
    for export in exports:
        back = read_town(tmp_path / export.town.code)
        assert back.town == export.town
        assert back.households == sorted(export.households, key=lambda h: h.id)
        assert [r.id for r in back.residents] == sorted(r.id for r in export.residents)
        assert len(back.installments) == len(export.installments)


# ---------------------------------------------------------------------------- population


def test_populations_are_near_the_towns_sizes(federation: list[TownExport]) -> None:
    assert [e.town.code for e in federation] == list(TARGETS)
    for export in federation:
        assert len(living(export)) == pytest.approx(TARGETS[export.town.code], rel=0.05)


def test_age_pyramid_is_rural(federation: list[TownExport]) -> None:
    for export in federation:
        ages = [age_on(r.birth_date, AS_OF) for r in living(export)]
        elderly = sum(a >= 65 for a in ages) / len(ages)
        young = sum(a < 15 for a in ages) / len(ages)
        assert 0.22 < elderly < 0.55, export.town.name
        assert young < elderly
        households = {r.household_id for r in living(export)}
        assert 2.1 < len(ages) / len(households) < 3.0


def test_identity_numbers_are_valid_and_unique_across_the_federation(
    federation: list[TownExport],
) -> None:
    residents = [r for e in federation for r in e.residents]
    assert all(is_valid_juminhyo_code(r.juminhyo_code) for r in residents)
    assert all(is_valid_my_number(r.my_number) for r in residents)
    assert len({r.juminhyo_code for r in residents}) == len(residents)
    assert len({r.my_number for r in residents}) == len(residents)
    assert len({r.id for r in residents}) == len(residents)
    for export in federation:
        assert all(re.fullmatch(export.town.code + r"\d{8}", r.id) for r in export.residents)


def test_every_household_has_one_living_head_listed_first(
    federation: list[TownExport],
) -> None:
    for export in federation:
        by_household: dict[str, list[Resident]] = {}
        for r in export.residents:
            by_household.setdefault(r.household_id, []).append(r)
        assert set(by_household) == {h.id for h in export.households}
        for household in export.households:
            members = by_household[household.id]
            alive = [r for r in members if r.removal is None]
            if not alive:  # the whole household left: its records are 除票
                continue
            assert [r.relationship for r in alive].count("世帯主") == 1
            assert alive[0].relationship == "世帯主"
            assert household.head_id == alive[0].id


def test_relationships_agree_with_birth_dates(federation: list[TownExport]) -> None:
    for export in federation:
        heads = {r.household_id: r for r in living(export) if r.relationship == "世帯主"}
        for r in living(export):
            head = heads[r.household_id]
            years = (r.birth_date - head.birth_date).days / 365.25
            if r.relationship == "子":
                assert years > 14, r
            elif r.relationship == "孫":
                assert years > 35, r
            elif r.relationship in ("父", "母"):
                assert years < -15, r
            assert r.birth_date <= r.became_resident <= r.address_set <= r.notified <= AS_OF


def test_surnames_are_shared_within_a_household(federation: list[TownExport]) -> None:
    core = {"世帯主", "妻", "夫", "子", "孫", "子の妻", "父", "母"}
    for export in federation:
        surnames: dict[str, set[str]] = {}
        for r in living(export):
            if r.kind is ResidentKind.JAPANESE and r.relationship in core:
                surnames.setdefault(r.household_id, set()).add(r.name.split("\u3000")[0])
        assert all(len(s) == 1 for s in surnames.values())


def test_addresses_use_the_towns_real_districts(federation: list[TownExport]) -> None:
    from shared.districts import districts_of

    for export in federation:
        real = {(d.name, d.postal_code) for d in districts_of(export.town.code)}
        used = {(h.district, h.postal_code) for h in export.households}
        assert used <= real
        assert len(used) > len(real) // 2
        assert all(re.match(r"\d+番地(\d+)?", h.address) for h in export.households)


def test_kana_is_certified_for_most_but_not_all(federation: list[TownExport]) -> None:
    for export in federation:
        certified = Counter(r.kana_certified for r in living(export))
        assert 0 < certified[False] < certified[True] * 0.1
        assert all(r.kana for r in export.residents)


# ---------------------------------------------------------------------------- characters


def test_about_two_percent_of_names_carry_a_moji_joho_selector(
    federation: list[TownExport],
) -> None:
    residents = [r for e in federation for r in e.residents]
    share = sum(bool(SELECTOR.search(r.name)) for r in residents) / len(residents)
    assert 0.01 < share < 0.035
    for r in residents:
        for match in SELECTOR.finditer(r.name):
            assert ord(match.group()) >= 0xE0102  # IPAmj has no Adobe-Japan1 E0100 for these


def _ivs_pairs(text: str) -> list[tuple[int, int]]:
    return [(ord(text[i - 1]), ord(c)) for i, c in enumerate(text) if SELECTOR.match(c)]


def test_every_variation_sequence_draws_a_distinct_ipamj_glyph() -> None:
    from fontTools.ttLib import TTFont

    # No skip: scripts/setup.sh installs the font, and a missing one must show.
    assert IPAMJ.exists(), "install Debian package fonts-ipamj-mincho (scripts/setup.sh)"

    with TTFont(IPAMJ, lazy=True) as font:
        default = font.getBestCmap()
        (uvs,) = [t.uvsDict for t in font["cmap"].tables if t.format == 14]
    glyph = {(base, selector): gid for selector, pairs in uvs.items() for base, gid in pairs}
    sequences = [s for s, _, _ in IVS_SURNAMES]
    from cloud.synthetic.names import TOWN_GAIJI

    sequences += [g.mapping.replacement for town in TOWN_GAIJI.values() for g in town]
    for text in sequences:
        for base, selector in _ivs_pairs(text):
            assert (base, selector) in glyph, (chr(base), hex(selector))
            assert glyph[base, selector] not in (None, default[base]), (chr(base), hex(selector))


def test_each_town_has_kichi_compatibility_forms_and_mapped_legacy_gaiji(
    federation: list[TownExport],
) -> None:
    kichi = {s[0] for s in KICHI_SURNAMES}
    compat = {s[0] for s in COMPAT_SURNAMES}
    targets: set[GaijiTarget] = set()
    for export in federation:
        names = [r.name for r in export.residents]
        assert any(n.split("\u3000")[0] in kichi for n in names)
        assert any("\U00020bb7" in n for n in names)
        assert any(n.split("\u3000")[0] in compat for n in names)
        table = {g.legacy: g for g in export.gaiji}
        used = {c for n in names for c in LEGACY.findall(n)}
        assert used, export.town.name
        assert used <= set(table)  # nothing the importer cannot map
        assert used == set(table)  # and every mapping is exercised
        for mapping in export.gaiji:
            if mapping.target is GaijiTarget.TOWN_FONT:
                assert mapping.replacement == mapping.legacy
            elif mapping.target is GaijiTarget.GYOSEI:
                assert all(0xF0000 <= ord(c) <= 0xFFFFD for c in mapping.replacement)
            else:
                assert not LEGACY.search(mapping.replacement)
            targets.add(mapping.target)
    assert targets == set(GaijiTarget)


# ---------------------------------------------------------------------------- registry items


def test_foreign_residents(federation: list[TownExport]) -> None:
    statuses: Counter[str] = Counter()
    for export in federation:
        foreign = [r for r in living(export) if r.kind is ResidentKind.FOREIGN]
        assert 0.008 < len(foreign) / len(living(export)) < 0.025
        for r in foreign:
            assert r.foreign is not None and r.foreign.nationality
            assert not r.honseki
            statuses[r.foreign.residence_status or r.foreign.status] += 1
            if r.foreign.period_of_stay not in ("", "無期限"):
                assert r.foreign.expiry is not None
    assert {"技能実習", "特定技能", "永住者", "家族滞在"} <= set(statuses)
    aliases = [r for e in federation for r in living(e) if r.foreign and r.foreign.alias]
    assert aliases and all(r.foreign and r.foreign.alias_kana for r in aliases)


def test_removed_records(federation: list[TownExport]) -> None:
    for export in federation:
        removed = [r for r in export.residents if r.removal is not None]
        reasons = Counter(r.removal.reason for r in removed if r.removal)
        assert reasons[RemovalReason.MOVED_OUT] and reasons[RemovalReason.DIED]
        assert 0.02 < len(removed) / len(export.residents) < 0.08
        for r in removed:
            assert r.removal is not None
            assert r.became_resident <= r.removal.date <= AS_OF
            if r.removal.reason is RemovalReason.MOVED_OUT:
                assert r.removal.destination


def test_support_blocks(federation: list[TownExport]) -> None:
    everyone = {r.id: r for e in federation for r in e.residents}
    for index, export in enumerate(federation):
        blocks = export.support_blocks
        active = [b for b in blocks if b.active_on(AS_OF)]
        assert len(active) >= 3 and len(active) < len(blocks)
        assert any(b.household_id for b in active)
        assert any(everyone[b.protected_ids[0]].removal for b in active)  # a 除票 too
        for b in blocks:
            assert all(everyone[i].town_code == export.town.code for i in b.protected_ids)
            if b.household_id:
                members = {r.id for r in living(export) if r.household_id == b.household_id}
                assert set(b.protected_ids) == members
        partner = federation[(index + 1) % len(federation)]
        assert any(
            (r.name, r.kana, r.birth_date)
            == (b.adversary_name, b.adversary_kana, b.adversary_birth_date)
            for b in blocks
            for r in living(partner)
        )


def test_tax_assessments(federation: list[TownExport]) -> None:
    years = {AS_OF.year - 2, AS_OF.year - 1, AS_OF.year}
    for export in federation:
        residents = {r.id: r for r in export.residents}
        assessments = export.tax_assessments
        assert {a.fiscal_year for a in assessments} == years
        filings = Counter(a.filing for a in assessments)
        assert set(filings) == set(FilingStatus)
        for a in assessments:
            r = residents[a.resident_id]
            jan1 = date(a.fiscal_year, 1, 1)
            assert r.became_resident <= jan1  # the 1 January address decides the town
            assert r.removal is None or r.removal.date > jan1
            if a.filing is FilingStatus.NOT_FILED:
                assert not a.income and not a.taxable
            if a.taxable:
                assert a.municipal_tax >= 3000 and a.prefectural_tax >= 1000
            kinds = {k for k, _ in a.income}
            if a.filing is FilingStatus.PENSION_REPORTED:
                assert age_on(r.birth_date, jan1) >= 60
            if kinds:
                assert age_on(r.birth_date, jan1) >= 15
        taxable = sum(a.taxable for a in assessments) / len(assessments)
        assert 0.4 < taxable < 0.8


def test_installments(federation: list[TownExport]) -> None:
    for export in federation:
        items = export.installments
        assert {i.tax for i in items} == set(TaxKind)
        assert len({i.id for i in items}) == len(items)
        arrears = [i for i in items if i.due <= AS_OF and i.outstanding > 0]
        not_yet_due = [i for i in items if i.due > AS_OF]
        assert arrears and not_yet_due
        assert any(i.paid == i.amount for i in not_yet_due)  # 全期前納
        assert all(i.paid_on is None for i in items if not i.paid)
        resident = [i for i in items if i.tax is TaxKind.RESIDENT]
        assert {(i.period, i.due.month) for i in resident} <= {
            (1, 6),
            (1, 7),
            (2, 8),
            (2, 9),
            (3, 10),
            (3, 11),
            (4, 1),
            (4, 2),
        }
        assert all(i.due.weekday() < 5 for i in items)
        vehicles = {v.id for v in export.vehicles}
        light = [i for i in items if i.tax is TaxKind.LIGHT_VEHICLE]
        assert all(i.vehicle_id in vehicles and i.period == 1 for i in light)
        assert any(i.outstanding for i in light)  # a 継続検査 certificate to refuse


def test_nhi_members(federation: list[TownExport]) -> None:
    for export in federation:
        residents = {r.id: r for r in export.residents}
        members = export.nhi_members
        current = [m for m in members if m.lost is None]
        assert len(current) > len(living(export)) * 0.1
        for m in current:
            age = age_on(residents[m.resident_id].birth_date, AS_OF)
            assert age < 75
            if age >= 70:
                assert m.copay_percent in (20, 30) and m.copay_effective is not None
            elif age >= 7:
                assert m.copay_percent == 30 and m.copay_effective is None
            assert m.valid_from <= m.valid_until
        assert any(m.lost for m in members)
        without = sum(not m.has_my_number_insurance for m in current) / len(current)
        assert 0.1 < without < 0.3
        assert len({(m.symbol, m.number, m.branch) for m in members}) == len(members)


def test_support_needs_and_vehicles(federation: list[TownExport]) -> None:
    for export in federation:
        alive = {r.id for r in living(export)}
        needs = export.support_needs
        assert len(needs) > 50
        assert all(n.resident_id in alive and n.reason and n.contact for n in needs)
        assert any(not n.consented for n in needs)
        households = {r.household_id for r in living(export)}
        assert len(export.vehicles) > len(households) * 0.7  # rural: cars everywhere
        assert len({v.plate for v in export.vehicles}) == len(export.vehicles)


# ---------------------------------------------------------------------------- towns, clerks


def test_towns(federation: list[TownExport]) -> None:
    for export in federation:
        town = export.town
        assert town.prefecture == "新潟県"
        assert set(dict(town.fees)) == set(FEE_KINDS)
        assert town.fee_for("juminhyo") == 300 and town.fee_for("keijidosha_keizoku") == 0
        assert town.seal.seal_text == f"{town.name}長之印"
        assert re.fullmatch(r"15\d{4}", town.nhi_insurer_number)
        assert town.office_address.startswith(town.certifier_prefix)
        mayors = [o for o in town.officials if not o.acting_for_mayor]
        assert [o.end for o in mayors].count(None) == 1
        acting = [o for o in town.officials if o.acting_for_mayor]
        assert any(o.end and o.end < AS_OF for o in acting)
        assert any(o.start > AS_OF for o in acting)


def test_clerks(federation: list[TownExport]) -> None:
    logins = [c.login_id for e in federation for c in e.clerks]
    assert len(set(logins)) == len(logins)
    for export in federation:
        clerks = export.clerks
        assert 8 <= len(clerks) <= 15
        assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d*", c.login_id) for c in clerks)
        roles = Counter(role for c in clerks for role in c.roles)
        assert roles[Role.ADMIN] == 1 and roles[Role.SUPERVISOR] >= 2
        assert 3 <= sum(c.on_roster for c in clerks) <= 5
        deputies = sorted(c.deputy_rank for c in clerks if c.deputy_rank)
        assert len(deputies) >= 2 and deputies == list(range(1, len(deputies) + 1))
        mayor = next(o for o in export.town.officials if o.end is None)
        assert any(c.name == mayor.name and c.deputy_rank == 1 for c in clerks)
