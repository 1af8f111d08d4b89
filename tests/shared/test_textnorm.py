"""Tests for shared.textnorm: search keys for names, readings and addresses."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.textnorm import (
    ITAIJI_TABLE,
    address_key,
    fold_kana,
    fold_kanji,
    fold_width,
    has_variation_selector,
    is_kana,
    kana_key,
    name_key,
    strip_variation_selectors,
)

# --------------------------------------------------------------------------
# Variation selectors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("辻\U000e0102", "辻"),
        ("辻\U000e0100太郎", "辻太郎"),
        ("葛\U000e0101城\ufe00", "葛城"),
        ("\U000e01ef", ""),
        ("山田", "山田"),
        ("", ""),
    ],
)
def test_strip_variation_selectors(text: str, expected: str) -> None:
    assert strip_variation_selectors(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("辻\U000e0102", True),
        ("A\ufe0f", True),
        ("辻", False),
        ("\U000e00ff", False),  # just below VS17
        ("\U000e01f0", False),  # just above VS256
        ("", False),
    ],
)
def test_has_variation_selector(text: str, expected: bool) -> None:
    assert has_variation_selector(text) is expected


# --------------------------------------------------------------------------
# Kanji folding
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "representative"),
    [
        ("斎齋齊斉", "斎"),
        ("辺邊邉\u9089\u908a", "辺"),
        ("髙高", "高"),
        ("\ufa11碕嵜崎", "崎"),
        ("濱浜", "浜"),
        ("澤沢", "沢"),
        ("櫻桜", "桜"),
        ("廣広", "広"),
        ("國国", "国"),
        ("槇槙", "槙"),
        ("嶋島嶌", "島"),
        ("眞真", "真"),
        ("籠篭", "籠"),
        ("龍竜", "竜"),
        ("邨村", "村"),
        ("冨富", "富"),
        ("德徳", "徳"),
        ("惠恵", "恵"),
        ("藏蔵", "蔵"),
        ("實実", "実"),
        ("壽寿", "寿"),
        ("瀨瀬", "瀬"),
        ("曾曽", "曽"),
        ("條条", "条"),
        ("萬万", "万"),
        ("兒児", "児"),
        ("會会", "会"),
        ("驒騨", "騨"),
        ("\U00020bb7吉", "吉"),
    ],
)
def test_fold_kanji_itaiji_groups(variants: str, representative: str) -> None:
    for ch in variants:
        assert fold_kanji(ch) == representative, ch


def test_fa11_is_not_handled_by_nfkc() -> None:
    # The reason the table lists 﨑 explicitly: it is one of the twelve
    # "unified" compatibility ideographs without a decomposition.
    assert unicodedata.normalize("NFKC", "\ufa11") == "\ufa11"
    assert fold_kanji("山\ufa11") == "山崎"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\uf929", "朗"),  # CJK COMPATIBILITY IDEOGRAPH-F929
        ("\ufa10", "塚"),  # 塚 compatibility form
        ("\u2f2d", "山"),  # KANGXI RADICAL MOUNTAIN
        ("\u2fd3", "竜"),  # KANGXI RADICAL DRAGON -> 龍 -> 竜
        ("\U0002f80f", unicodedata.normalize("NFC", "\U0002f80f")),  # supplement block
        ("聖篭町", "聖籠町"),
        ("齋藤\U000e0100", "斎藤"),
    ],
)
def test_fold_kanji_compatibility_and_context(text: str, expected: str) -> None:
    assert fold_kanji(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "\ue000\uf8ff",  # Private Use Area (legacy 外字) stays as is
        "\U000f0000",  # supplementary PUA
        "やまだ ヤマダ ﾔﾏﾀﾞ ABC １２３ ㈱",  # not fold_kanji's business
        "\ufa0f",  # 﨏: unified compat ideograph, no known equivalent
    ],
)
def test_fold_kanji_leaves_other_text_alone(text: str) -> None:
    assert fold_kanji(text) == text


def test_itaiji_table_representatives_are_fixed_points() -> None:
    for variant, rep in ITAIJI_TABLE.items():
        assert rep not in ITAIJI_TABLE, (variant, rep)
        assert fold_kanji(rep) == rep
        assert variant != rep


@given(st.text())
def test_fold_kanji_idempotent(text: str) -> None:
    once = fold_kanji(text)
    assert fold_kanji(once) == once
    assert not has_variation_selector(once)


_KANJI_HEAVY = st.text(
    st.one_of(
        st.sampled_from(sorted({*ITAIJI_TABLE, *ITAIJI_TABLE.values()})),
        st.characters(min_codepoint=0xF900, max_codepoint=0xFAFF),
        st.characters(min_codepoint=0x2F00, max_codepoint=0x2FDF),
        st.characters(min_codepoint=0xFE00, max_codepoint=0xFE0F),
        st.characters(min_codepoint=0xE0100, max_codepoint=0xE01EF),
    )
)


@given(_KANJI_HEAVY)
def test_fold_kanji_idempotent_on_variant_heavy_text(text: str) -> None:
    once = fold_kanji(text)
    assert fold_kanji(once) == once


# --------------------------------------------------------------------------
# Width and kana folding
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ﾔﾏﾀﾞ", "ヤマダ"),
        ("ﾊﾟﾝ", "パン"),
        ("ＡＢＣ１２３", "ABC123"),
        ("山田\u3000太郎", "山田 太郎"),
        ("カ゛", "ガ"),  # spacing sound mark composes
        ("ア\u3099", "ア\u3099"),  # uncomposable mark kept (as combining)
    ],
)
def test_fold_width(text: str, expected: str) -> None:
    assert fold_width(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("やまだ", "ヤマダ"),
        ("ヤマダ", "ヤマダ"),
        ("ﾔﾏﾀﾞ", "ヤマダ"),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダタロウ"),
        ("やまだ\u3000たろう", "ヤマダタロウ"),
        ("ｻﾄｰ", "サト"),
        ("サトー", "サト"),
        ("サト－", "サト"),
        ("サト‐", "サト"),
        ("サト–", "サト"),
        ("サト-", "サト"),
        ("きょうこ", "キヨウコ"),
        ("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ"),
        ("ヴァ", "バ"),
        ("ヴィ", "ビ"),
        ("ヴ", "ブ"),
        ("ヴェ", "ベ"),
        ("ヴォ", "ボ"),
        ("ゔぁいおりん", "バイオリン"),
        ("ｳﾞｨ", "ビ"),
        ("ヂ", "ジ"),
        ("ぢ", "ジ"),
        ("ヅ", "ズ"),
        ("づ", "ズ"),
        ("ヲ", "オ"),
        ("を", "オ"),
        ("ゐゑ", "イエ"),
        ("いすゞ", "イスズ"),
        ("ジョン・スミス", "ジヨンスミス"),
        ("ＡＢＣ", "ABC"),
        ("ﾊﾟﾋﾟﾌﾟ", "パピプ"),
        ("か\u3099", "ガ"),
        ("辻\U000e0102", "辻"),
        ("", ""),
    ],
)
def test_fold_kana(text: str, expected: str) -> None:
    assert fold_kana(text) == expected
    assert kana_key(text) == expected


_HIRAGANA = st.characters(min_codepoint=0x3041, max_codepoint=0x3096)
_KANA_ALPHABET = st.one_of(
    _HIRAGANA,
    st.characters(min_codepoint=0x3099, max_codepoint=0x30FF),
    st.characters(min_codepoint=0xFF61, max_codepoint=0xFF9F),
    st.sampled_from(" \u3000－‐–-ー・ゝゞヽヾ\ufe00"),
)


@given(st.text(_KANA_ALPHABET))
def test_fold_kana_idempotent_on_kana(text: str) -> None:
    once = fold_kana(text)
    assert fold_kana(once) == once


@given(st.text())
def test_fold_kana_idempotent_on_any_text(text: str) -> None:
    once = fold_kana(text)
    assert fold_kana(once) == once


@given(st.text(st.one_of(_HIRAGANA, st.sampled_from("ゝゞー "))))
def test_fold_kana_hiragana_equals_katakana(hiragana: str) -> None:
    katakana = "".join(chr(ord(ch) + 0x60) if ch not in "ー " else ch for ch in hiragana)
    assert fold_kana(hiragana) == fold_kana(katakana)


@given(st.text(st.characters(min_codepoint=0xFF66, max_codepoint=0xFF9F)))
def test_fold_kana_half_width_matches_nfkc_full_width(half: str) -> None:
    # NFKC is the reference half-width -> full-width mapping (incl. ﾞﾟ).
    assert fold_kana(half) == fold_kana(unicodedata.normalize("NFKC", half))


_PURE_KANA_ALPHABET = st.one_of(
    _HIRAGANA,
    st.characters(min_codepoint=0x3099, max_codepoint=0x30FF),
    st.characters(min_codepoint=0xFF66, max_codepoint=0xFF9F),  # no ｡｢｣､
    st.characters(min_codepoint=0x31F0, max_codepoint=0x31FF),
    st.sampled_from(" \u3000－‐–-"),
)


@given(st.text(_PURE_KANA_ALPHABET))
def test_fold_kana_output_is_compact_large_katakana(text: str) -> None:
    out = fold_kana(text)
    for ch in out:
        assert "\u30a1" <= ch <= "\u30fa", (text, out)
        assert ch not in "ァィゥェォッャュョヮヵヶヴヂヅヲー・"


# --------------------------------------------------------------------------
# is_kana
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("やまだ", True),
        ("ヤマダ タロウ", True),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", True),
        ("サトー", True),
        ("ｻﾄｰ", True),
        ("サト－", True),
        ("ジョン・スミス", True),
        ("\u3000やまだ\u3000", True),
        ("山田", False),
        ("やま田", False),
        ("yamada", False),
        ("", False),
        ("   ", False),
    ],
)
def test_is_kana(text: str, expected: bool) -> None:
    assert is_kana(text) is expected


# --------------------------------------------------------------------------
# name_key
# --------------------------------------------------------------------------


def test_name_key_ignores_variation_selectors() -> None:
    assert name_key("辻\U000e0102") == name_key("辻")
    assert name_key("辻\U000e0102 太郎") == name_key("辻太郎")


def test_name_key_folds_saito_variants() -> None:
    keys = {name_key(n) for n in ("齋藤", "斎藤", "齊藤", "斉藤", "齋藤\U000e0100")}
    assert keys == {"斎藤"}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("渡邊", "渡辺"),
        ("渡邉\U000e0104", "渡辺"),
        ("髙橋", "高橋"),
        ("山﨑", "山崎"),
        ("𠮷田", "吉田"),
        ("山田 太郎", "山田\u3000太郎"),
        ("山田　太郎", "山田太郎"),
        ("一之瀬", "一ノ瀬"),
        ("一の瀬", "一ノ瀬"),
        ("ＳＭＩＴＨ Ｊｏｈｎ", "SMITH JOHN"),
        ("関ヶ原", "関ケ原"),
        ("ﾔﾏﾀﾞ", "ヤマダ"),
    ],
)
def test_name_key_equivalences(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("やまだ", "ヤマダ"),  # readings are kana_key's job
        ("山田", "山本"),
        ("のぞみ", "ノぞみ"),  # の not between kanji is left alone
    ],
)
def test_name_key_distinctions(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


@given(st.text())
def test_name_key_idempotent(text: str) -> None:
    once = name_key(text)
    assert name_key(once) == once


# --------------------------------------------------------------------------
# address_key
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("大字亀塚１２３番地４", "亀塚123-4"),
        ("亀塚123-4", "亀塚123-4"),
        ("亀塚１２３－４", "亀塚123-4"),
        ("亀塚123番地の4", "亀塚123-4"),
        ("亀塚123の4", "亀塚123-4"),
        ("亀塚123ー4", "亀塚123-4"),
        ("亀塚123番地", "亀塚123"),
        ("本町三丁目5番2号", "本町3-5-2"),
        ("本町3丁目5-2", "本町3-5-2"),
        ("本町二十三丁目", "本町23"),
        ("聖篭町大字亀塚 123", "聖籠町亀塚123"),
        ("霞ヶ関1-2", "霞ケ関1-2"),
        ("亀塚ハイツ１０１号室", "亀塚ハイツ101室"),
        ("ａ棟", "A棟"),
    ],
)
def test_address_key(text: str, expected: str) -> None:
    assert address_key(text) == expected


@pytest.mark.parametrize(
    ("registered", "typed"),
    [
        ("聖籠町大字亀塚１２３番地４", "亀塚123-4"),
        ("聖籠町大字亀塚１２３番地４", "亀塚１２３番地４"),
        ("聖籠町大字亀塚１２３番地４", "聖籠町亀塚"),
        ("新潟県北蒲原郡聖籠町大字亀塚123番地の4", "亀塚123の4"),
        ("本町三丁目5番2号", "本町3-5"),
        ("大字濱田１０", "浜田10"),
    ],
)
def test_address_key_contains_search(registered: str, typed: str) -> None:
    assert address_key(typed) in address_key(registered)


_ADDRESS_ALPHABET = st.one_of(
    st.sampled_from(
        list("0123456789０１２３４５６７８９一二三十百大小字丁目番地号のノ之ー－-亀塚")
    ),
    st.sampled_from([" ", "\u3000", "ヶ", "゛"]),
)


@given(st.text(_ADDRESS_ALPHABET))
def test_address_key_idempotent_on_address_like_text(text: str) -> None:
    once = address_key(text)
    assert address_key(once) == once


@given(st.text())
def test_address_key_idempotent(text: str) -> None:
    once = address_key(text)
    assert address_key(once) == once
