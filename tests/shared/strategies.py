"""Hypothesis strategies for model objects, shared by the tests of several modules."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from shared import model

# Names as the registry really holds them: Moji_Joho variation sequences, non-BMP,
# compatibility forms, legacy-mapped 行政事務標準文字 in plane 15.
SPECIAL_NAME_PARTS = [
    "辻\U000e0102",
    "葛\U000e0102",
    "\U00020bb7",
    "髙",
    "﨑",
    "齋",
    "邉",
    "\U000f0101",
]
kanji = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
name_part = st.one_of(st.sampled_from(SPECIAL_NAME_PARTS), kanji.map(str))
names = st.lists(name_part, min_size=1, max_size=4).map("".join)
katakana = st.text(
    alphabet=st.characters(min_codepoint=0x30A1, max_codepoint=0x30F6), min_size=1, max_size=8
)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 11, 26))
digits11 = st.text(alphabet="0123456789", min_size=11, max_size=11)
digits10 = st.text(alphabet="0123456789", min_size=10, max_size=10)
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20
)


@st.composite
def residents(draw: st.DrawFn, town_code: str = "15307") -> model.Resident:
    first11 = draw(digits11)
    first10 = draw(digits10)
    foreign = draw(st.booleans())
    removed = draw(st.booleans())
    return model.Resident(
        id=f"{town_code}-R{draw(st.integers(0, 999_999)):06d}",
        town_code=town_code,
        household_id=f"{town_code}-H{draw(st.integers(0, 99_999)):05d}",
        name=draw(names),
        kana=draw(katakana),
        kana_certified=draw(st.booleans()),
        birth_date=draw(dates),
        sex=draw(st.sampled_from(model.Sex)),
        relationship=draw(st.sampled_from(["世帯主", "妻", "子", "母", "孫"])),
        became_resident=draw(dates),
        address_set=draw(dates),
        notified=draw(dates),
        previous_address=draw(plain_text),
        juminhyo_code=first10 + str(model.juminhyo_code_check_digit(first10)),
        my_number=first11 + str(model.my_number_check_digit(first11)),
        kind=model.ResidentKind.FOREIGN if foreign else model.ResidentKind.JAPANESE,
        honseki="" if foreign else draw(plain_text),
        hittosha="" if foreign else draw(names),
        former_surname=draw(st.one_of(st.just(""), names)),
        former_surname_kana=draw(st.one_of(st.just(""), katakana)),
        foreign=model.ForeignResidentItems(
            nationality=draw(st.sampled_from(["ベトナム", "中国", "フィリピン"])),
            status="中長期在留者",
            residence_status=draw(st.sampled_from(["技能実習", "永住者", "特定技能"])),
            period_of_stay="3年",
            expiry=draw(st.one_of(st.none(), dates)),
            alias=draw(st.one_of(st.just(""), names)),
            alias_kana=draw(st.one_of(st.just(""), katakana)),
        )
        if foreign
        else None,
        removal=model.Removal(
            reason=draw(st.sampled_from(model.RemovalReason)),
            date=draw(dates),
            destination=draw(plain_text),
        )
        if removed
        else None,
    )
