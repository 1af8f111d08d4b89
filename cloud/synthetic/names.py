"""Synthetic names: Japanese name pools from Faker's ja_JP provider, widened by generation,
plus the characters a real register holds that a plain name list lacks.

Faker 40's ja_JP provider ships (kanji, katakana, romaji) triples: 50 weighted surnames,
30 male and 21 female given names. That is the backbone; it is widened here with Niigata
surnames and with given names typical of each generation (a register of a rural town is
mostly people born before 1970, whose names Faker's modern list does not have).

Variant characters (the reason this module exists):

* Moji_Joho Ideographic Variation Sequences — only base/selector pairs that IPAmj明朝
  maps to a glyph *other* than the base's default (checked against the font's cmap
  format 14; IPAmj has no Adobe-Japan1 U+E0100 for these bases);
* 𠮷 U+20BB7 (outside the BMP, absent from IPAex) and the forms 髙 U+9AD9 and 﨑 U+FA11
  (the latter in the CJK Compatibility block, but one of its twelve unified ideographs,
  so NFC keeps it);
* each town's legacy 外字: BMP Private Use Area codes as the old core system writes them,
  with the `GaijiMapping` that says what each becomes. The same legacy code means
  different characters in different towns, as it does in real systems.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from faker import Faker

from shared.model import GaijiMapping, GaijiTarget

# (kanji, katakana, romaji)
NameTriple = tuple[str, str, str]

SPACE = "\u3000"  # between surname and given name, in both 氏名 and フリガナ

# Common in Niigata but missing from Faker's national top 50.
_NIIGATA_SURNAMES: tuple[tuple[NameTriple, float], ...] = (
    (("本間", "ホンマ", "Honma"), 160000),
    (("五十嵐", "イガラシ", "Igarashi"), 150000),
    (("小林", "コバヤシ", "Kobayashi"), 80000),
    (("長谷川", "ハセガワ", "Hasegawa"), 80000),
    (("星", "ホシ", "Hoshi"), 70000),
    (("丸山", "マルヤマ", "Maruyama"), 70000),
    (("樋口", "ヒグチ", "Higuchi"), 60000),
    (("金子", "カネコ", "Kaneko"), 60000),
    (("田村", "タムラ", "Tamura"), 50000),
    (("大滝", "オオタキ", "Otaki"), 40000),
    (("風間", "カザマ", "Kazama"), 40000),
    (("小熊", "オグマ", "Oguma"), 30000),
    (("捧", "ササゲ", "Sasage"), 20000),
    (("渋谷", "シブヤ", "Shibuya"), 40000),
    (("小野塚", "オノヅカ", "Onozuka"), 20000),
    (("白井", "シライ", "Shirai"), 30000),
    (("板垣", "イタガキ", "Itagaki"), 30000),
    (("相馬", "ソウマ", "Soma"), 30000),
)

# Given names by the decade people were born in (kanji, kana, romaji).
_MALE_OLD: tuple[NameTriple, ...] = (
    ("清", "キヨシ", "Kiyoshi"),
    ("茂", "シゲル", "Shigeru"),
    ("勇", "イサム", "Isamu"),
    ("進", "ススム", "Susumu"),
    ("正雄", "マサオ", "Masao"),
    ("一郎", "イチロウ", "Ichiro"),
    ("三郎", "サブロウ", "Saburo"),
    ("武", "タケシ", "Takeshi"),
    ("実", "ミノル", "Minoru"),
    ("弘", "ヒロシ", "Hiroshi"),
    ("昭二", "ショウジ", "Shoji"),
    ("勝", "マサル", "Masaru"),
    ("栄一", "エイイチ", "Eiichi"),
    ("義雄", "ヨシオ", "Yoshio"),
    ("辰雄", "タツオ", "Tatsuo"),
)
_FEMALE_OLD: tuple[NameTriple, ...] = (
    ("トシ", "トシ", "Toshi"),
    ("ハル", "ハル", "Haru"),
    ("キヨ", "キヨ", "Kiyo"),
    ("ミツ", "ミツ", "Mitsu"),
    ("和子", "カズコ", "Kazuko"),
    ("幸子", "サチコ", "Sachiko"),
    ("節子", "セツコ", "Setsuko"),
    ("文子", "フミコ", "Fumiko"),
    ("久子", "ヒサコ", "Hisako"),
    ("千代", "チヨ", "Chiyo"),
    ("ヨシ", "ヨシ", "Yoshi"),
    ("静江", "シズエ", "Shizue"),
    ("キミ", "キミ", "Kimi"),
    ("正子", "マサコ", "Masako"),
    ("美代子", "ミヨコ", "Miyoko"),
)
_MALE_MID: tuple[NameTriple, ...] = (
    ("博", "ヒロシ", "Hiroshi"),
    ("隆", "タカシ", "Takashi"),
    ("修", "オサム", "Osamu"),
    ("誠", "マコト", "Makoto"),
    ("明", "アキラ", "Akira"),
    ("健一", "ケンイチ", "Kenichi"),
    ("和夫", "カズオ", "Kazuo"),
    ("正", "タダシ", "Tadashi"),
    ("秀樹", "ヒデキ", "Hideki"),
    ("浩二", "コウジ", "Koji"),
    ("剛", "ツヨシ", "Tsuyoshi"),
    ("幸一", "コウイチ", "Koichi"),
)
_FEMALE_MID: tuple[NameTriple, ...] = (
    ("恵子", "ケイコ", "Keiko"),
    ("洋子", "ヨウコ", "Yoko"),
    ("京子", "キョウコ", "Kyoko"),
    ("美智子", "ミチコ", "Michiko"),
    ("由美子", "ユミコ", "Yumiko"),
    ("裕子", "ユウコ", "Yuko"),
    ("真由美", "マユミ", "Mayumi"),
    ("順子", "ジュンコ", "Junko"),
    ("典子", "ノリコ", "Noriko"),
    ("悦子", "エツコ", "Etsuko"),
    ("久美子", "クミコ", "Kumiko"),
    ("直美", "ナオミ", "Naomi"),
)
_MALE_NEW: tuple[NameTriple, ...] = (
    ("蓮", "レン", "Ren"),
    ("陽翔", "ハルト", "Haruto"),
    ("湊", "ミナト", "Minato"),
    ("大翔", "ヒロト", "Hiroto"),
    ("悠真", "ユウマ", "Yuma"),
    ("颯太", "ソウタ", "Sota"),
    ("樹", "イツキ", "Itsuki"),
    ("朝陽", "アサヒ", "Asahi"),
    ("蒼", "アオイ", "Aoi"),
    ("悠人", "ハルト", "Haruto"),
    ("大和", "ヤマト", "Yamato"),
    ("陸", "リク", "Riku"),
)
_FEMALE_NEW: tuple[NameTriple, ...] = (
    ("陽菜", "ヒナ", "Hina"),
    ("凛", "リン", "Rin"),
    ("葵", "アオイ", "Aoi"),
    ("結菜", "ユイナ", "Yuina"),
    ("芽依", "メイ", "Mei"),
    ("紬", "ツムギ", "Tsumugi"),
    ("さくら", "サクラ", "Sakura"),
    ("美咲", "ミサキ", "Misaki"),
    ("莉子", "リコ", "Riko"),
    ("心春", "コハル", "Koharu"),
    ("杏", "アン", "An"),
    ("結愛", "ユア", "Yua"),
)

# Moji_Joho IVS surnames. Every selector below was checked against IPAmj明朝's cmap
# format 14 to map to a glyph different from the base character's default one.
IVS_SURNAMES: tuple[NameTriple, ...] = (
    ("辻\U000e0102", "ツジ", "Tsuji"),  # 一点しんにょう
    ("辻\U000e0102本", "ツジモト", "Tsujimoto"),
    ("葛\U000e0102西", "カサイ", "Kasai"),
    ("葛\U000e0104巻", "クズマキ", "Kuzumaki"),
    ("渡邉\U000e0110", "ワタナベ", "Watanabe"),
    ("渡邉\U000e011d", "ワタナベ", "Watanabe"),
    ("渡邊\U000e0109", "ワタナベ", "Watanabe"),
    ("渡邊\U000e010b", "ワタナベ", "Watanabe"),
    ("渡辺\U000e0102", "ワタナベ", "Watanabe"),
    ("齋\U000e0103藤", "サイトウ", "Saito"),
    ("齋\U000e0104藤", "サイトウ", "Saito"),
    ("斎\U000e0102藤", "サイトウ", "Saito"),
    ("山﨑\U000e0103", "ヤマザキ", "Yamazaki"),
    ("澤\U000e0102田", "サワダ", "Sawada"),
    ("濱\U000e0102田", "ハマダ", "Hamada"),
    ("佐藤\U000e0103", "サトウ", "Sato"),
    ("榊\U000e0102原", "サカキバラ", "Sakakibara"),
    ("菅\U000e0102原", "スガワラ", "Sugawara"),
    ("柳\U000e0102田", "ヤナギダ", "Yanagida"),
)

# 𠮷 is outside the BMP; 髙 and 﨑 are distinct code points a register keeps.
KICHI_SURNAMES: tuple[NameTriple, ...] = (
    ("\U00020bb7田", "ヨシダ", "Yoshida"),
    ("\U00020bb7川", "ヨシカワ", "Yoshikawa"),
    ("\U00020bb7野", "ヨシノ", "Yoshino"),
)
COMPAT_SURNAMES: tuple[NameTriple, ...] = (
    ("髙橋", "タカハシ", "Takahashi"),
    ("髙田", "タカダ", "Takada"),
    ("髙野", "タカノ", "Takano"),
    ("山﨑", "ヤマザキ", "Yamazaki"),
    ("宮﨑", "ミヤザキ", "Miyazaki"),
    ("川﨑", "カワサキ", "Kawasaki"),
)


@dataclass(frozen=True, slots=True)
class TownGaiji:
    """A legacy 外字 of one town and a surname its old system writes with it."""

    mapping: GaijiMapping
    surname: NameTriple  # contains the legacy PUA character


def _gaiji(
    code: str,
    legacy: int,
    target: GaijiTarget,
    replacement: str,
    description: str,
    surname: str,
    kana: str,
    romaji: str,
) -> TownGaiji:
    legacy_char = chr(legacy)
    if target is GaijiTarget.TOWN_FONT:
        replacement = legacy_char
    return TownGaiji(
        GaijiMapping(code, legacy_char, target, replacement, description),
        (surname.replace("〓", legacy_char), kana, romaji),
    )


# 行政事務標準文字 beyond MJ sit in Supplementary Private Use Area-A; these code points
# are synthetic stand-ins for that font's assignments.
_U = GaijiTarget.UNICODE
_G = GaijiTarget.GYOSEI
_T = GaijiTarget.TOWN_FONT
TOWN_GAIJI: dict[str, tuple[TownGaiji, ...]] = {
    "15307": (
        _gaiji(
            "15307",
            0xE000,
            _U,
            "辻\U000e0102",
            "辻（一点しんにょう）",
            "〓村",
            "ツジムラ",
            "Tsujimura",
        ),
        _gaiji(
            "15307",
            0xE001,
            _G,
            "\U000f0a21",
            "髙の異体（はしご高・口が目）",
            "〓井",
            "タカイ",
            "Takai",
        ),
        _gaiji(
            "15307", 0xE002, _T, "", "﨑の異体（山へんに立と可）", "岩〓", "イワサキ", "Iwasaki"
        ),
        _gaiji("15307", 0xE003, _U, "邊\U000e010a", "邊（自の下が冖）", "田〓", "タナベ", "Tanabe"),
    ),
    "15405": (
        _gaiji(
            "15405",
            0xE000,
            _U,
            "葛\U000e0106",
            "葛（異体・下が人）",
            "〓原",
            "クズハラ",
            "Kuzuhara",
        ),
        _gaiji("15405", 0xE001, _T, "", "濵の異体（町独自の字形）", "〓野", "ハマノ", "Hamano"),
        _gaiji(
            "15405", 0xE002, _G, "\U000f1c07", "榮の異体（火が木）", "〓田", "サカエダ", "Sakaeda"
        ),
    ),
    "15581": (
        _gaiji(
            "15581", 0xE000, _G, "\U000f0412", "嶋の異体（山が上）", "大〓", "オオシマ", "Oshima"
        ),
        _gaiji("15581", 0xE001, _U, "髙", "髙（はしご高）", "〓見", "タカミ", "Takami"),
        _gaiji("15581", 0xE002, _U, "齋\U000e0105", "齋（示が小）", "〓藤", "サイトウ", "Saito"),
        _gaiji(
            "15581",
            0xE003,
            _T,
            "",
            "澤の異体（村の旧システム字形）",
            "平〓",
            "ヒラサワ",
            "Hirasawa",
        ),
    ),
}

# Foreign residents: names as on the 在留カード (alphabet, or 漢字 for Chinese and Korean),
# kana with a full-width space between parts. (name parts, kana parts) per nationality.
FOREIGN_NAMES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "ベトナム": {
        "surname": (
            ("NGUYEN", "グエン"),
            ("TRAN", "チャン"),
            ("LE", "レ"),
            ("PHAM", "ファム"),
            ("HOANG", "ホアン"),
            ("VU", "ヴー"),
            ("DO", "ドー"),
            ("BUI", "ブイ"),
        ),
        "middle_m": (("VAN", "ヴァン"), ("DUC", "ドゥック"), ("MINH", "ミン")),
        "middle_f": (("THI", "ティ"), ("NGOC", "ゴック")),
        "given_m": (
            ("NAM", "ナム"),
            ("HUNG", "フン"),
            ("TUAN", "トゥアン"),
            ("LONG", "ロン"),
            ("DUNG", "ズン"),
            ("QUANG", "クアン"),
        ),
        "given_f": (
            ("LINH", "リン"),
            ("HUONG", "フオン"),
            ("LAN", "ラン"),
            ("MAI", "マイ"),
            ("TRANG", "チャン"),
            ("HA", "ハー"),
        ),
    },
    "フィリピン": {
        "surname": (
            ("SANTOS", "サントス"),
            ("REYES", "レイエス"),
            ("CRUZ", "クルス"),
            ("GARCIA", "ガルシア"),
            ("BAUTISTA", "バウティスタ"),
            ("MENDOZA", "メンドーサ"),
        ),
        "middle_m": (("JOSE", "ホセ"), ("MIGUEL", "ミゲル")),
        "middle_f": (("CLARA", "クララ"), ("JOY", "ジョイ"), ("GRACE", "グレース")),
        "given_m": (("MARK", "マーク"), ("JOHN", "ジョン"), ("JOSHUA", "ジョシュア")),
        "given_f": (
            ("MARIA", "マリア"),
            ("ANNA", "アンナ"),
            ("CRISTINA", "クリスティナ"),
            ("ROSALIE", "ロザリー"),
        ),
    },
    "インドネシア": {
        "surname": (
            ("SANTOSO", "サントソ"),
            ("PRATAMA", "プラタマ"),
            ("WIJAYA", "ウィジャヤ"),
            ("SAPUTRA", "サプトラ"),
        ),
        "middle_m": (),
        "middle_f": (),
        "given_m": (("BUDI", "ブディ"), ("AGUS", "アグス"), ("RIZKI", "リズキ")),
        "given_f": (("SITI", "シティ"), ("DEWI", "デウィ"), ("PUTRI", "プトリ")),
    },
    "中国": {
        "surname": (
            ("王", "ワン"),
            ("李", "リ"),
            ("張", "チャン"),
            ("劉", "リュウ"),
            ("陳", "チン"),
            ("楊", "ヤン"),
        ),
        "middle_m": (),
        "middle_f": (),
        "given_m": (("偉", "ウェイ"), ("強", "チャン"), ("磊", "レイ"), ("軍", "ジュン")),
        "given_f": (("芳", "ファン"), ("娜", "ナ"), ("敏", "ミン"), ("静", "ジン"), ("麗", "リー")),
    },
    "韓国": {
        "surname": (("金", "キム"), ("李", "イ"), ("朴", "パク"), ("崔", "チェ")),
        "middle_m": (),
        "middle_f": (),
        "given_m": (("英植", "ヨンシク"), ("成浩", "ソンホ"), ("正男", "チョンナム")),
        "given_f": (("順子", "スンジャ"), ("英姫", "ヨンヒ"), ("美淑", "ミスク")),
    },
}
_IDEOGRAPHIC_NATIONS = frozenset({"中国", "韓国"})


class NamePools:
    """Weighted name pools; draws with the caller's `random.Random`, never Faker's."""

    def __init__(self, fake: Faker) -> None:
        # Faker exposes its ja_JP data through the provider; take the weighted surname table
        # as it ships, so a Faker upgrade changes names but never breaks determinism within
        # one locked environment.
        provider = next(p for p in fake.providers if hasattr(p, "last_name_pairs"))
        surnames: list[tuple[NameTriple, float]] = [
            (triple, float(weight)) for triple, weight in provider.last_name_pairs.items()
        ]
        seen = {t[0] for t, _ in surnames}
        surnames += [(t, w) for t, w in _NIIGATA_SURNAMES if t[0] not in seen]
        self.surnames: tuple[NameTriple, ...] = tuple(t for t, _ in surnames)
        self._surname_cum = list(itertools.accumulate(w for _, w in surnames))
        faker_male = tuple(provider.first_name_male_pairs)
        faker_female = tuple(provider.first_name_female_pairs)
        self._male = (_MALE_OLD, _MALE_MID, faker_male, faker_male + _MALE_NEW)
        self._female = (_FEMALE_OLD, _FEMALE_MID, faker_female, faker_female + _FEMALE_NEW)

    def surname(self, rng: random.Random) -> NameTriple:
        total = self._surname_cum[-1]
        return self.surnames[bisect.bisect_right(self._surname_cum, rng.random() * total)]

    def given(self, rng: random.Random, male: bool, birth_year: int) -> NameTriple:
        era = 0 if birth_year < 1946 else 1 if birth_year < 1971 else 2 if birth_year < 1996 else 3
        pool = (self._male if male else self._female)[era]
        return pool[int(rng.random() * len(pool))]


def full_name(surname: NameTriple, given: NameTriple) -> tuple[str, str]:
    """氏名 and フリガナ with the full-width space registers put between the parts."""
    return f"{surname[0]}{SPACE}{given[0]}", f"{surname[1]}{SPACE}{given[1]}"


def foreign_name(
    rng: random.Random, nationality: str, male: bool, surname: tuple[str, str] | None = None
) -> tuple[str, str, tuple[str, str]]:
    """(氏名, フリガナ, surname part) for a foreign resident of `nationality`."""
    pools = FOREIGN_NAMES[nationality]
    family = surname or rng.choice(pools["surname"])
    given = rng.choice(pools["given_m" if male else "given_f"])
    middle_pool = pools["middle_m" if male else "middle_f"]
    parts = [family]
    if middle_pool and rng.random() < 0.8:
        parts.append(rng.choice(middle_pool))
    parts.append(given)
    if nationality in _IDEOGRAPHIC_NATIONS:
        name = SPACE.join(p[0] for p in parts)
    else:
        name = " ".join(p[0] for p in parts)
    kana = SPACE.join(p[1] for p in parts)
    return name, kana, family
