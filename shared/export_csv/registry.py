"""支援措置, 世帯 and 住民: shien_sochi.csv, setai.csv, jumin.csv."""

from __future__ import annotations

from shared.model import (
    ForeignResidentItems,
    Household,
    Removal,
    RemovalReason,
    Resident,
    ResidentKind,
    Sex,
    SupportBlock,
    is_valid_juminhyo_code,
    is_valid_my_number,
)

from .codec import Row, fmt_bool, fmt_date
from .spec import Context, FileSpec, join

# ---------------------------------------------------------------------------- 支援措置

SHIEN_SOCHI: FileSpec[SupportBlock] = FileSpec(
    name="shien_sochi.csv",
    attribute="support_blocks",
    header=(
        "支援措置番号",
        "対象者_宛名番号",
        "世帯番号",
        "相手方_氏名",
        "相手方_氏名_フリガナ",
        "相手方_生年月日",
        "支援開始年月日",
        "支援終了年月日",
    ),
    key=lambda b: (b.id,),
    to_row=lambda b: [
        b.id,
        join(b.protected_ids, f"支援措置 {b.id}"),
        b.household_id,
        b.adversary_name,
        b.adversary_kana,
        fmt_date(b.adversary_birth_date),
        fmt_date(b.start),
        fmt_date(b.end),
    ],
    from_row=lambda r, c: _support_block(r, c),
)


def _support_block(r: Row, c: Context) -> SupportBlock:
    block = SupportBlock(
        id=r.ident("支援措置番号"),
        town_code=c.town_code,
        protected_ids=r.ids("対象者_宛名番号"),
        household_id=r.ident("世帯番号", required=False),
        adversary_name=r.text("相手方_氏名"),
        adversary_kana=r.kana("相手方_氏名_フリガナ"),
        adversary_birth_date=r.optional_day("相手方_生年月日"),
        start=r.day("支援開始年月日"),
        end=r.day("支援終了年月日"),
    )
    if block.end < block.start:
        raise r.error("支援終了年月日", "終了日が開始日より前です", "end on or after start")
    return block


# ---------------------------------------------------------------------------- 世帯

SETAI: FileSpec[Household] = FileSpec(
    name="setai.csv",
    attribute="households",
    header=("世帯番号", "世帯主_宛名番号", "郵便番号", "住所_町字", "住所_番地以下"),
    key=lambda h: (h.id,),
    to_row=lambda h: [h.id, h.head_id, h.postal_code, h.district, h.address],
    from_row=lambda r, c: _household(r, c),
)


def _household(r: Row, c: Context) -> Household:
    district = r.text("住所_町字", required=True, gaiji=False)
    if district not in c.districts:
        known = "、".join(sorted(c.districts)) or "（この町村の町字が districts.tsv にありません）"
        raise r.error(
            "住所_町字",
            f"この町村にない町字です。使える町字: {known}",
            f"a district of town {c.town_code} listed in shared/data/districts.tsv",
        )
    postal_code = r.digits("郵便番号", 7)
    if postal_code not in c.districts[district]:
        codes = "、".join(sorted(c.districts[district]))
        raise r.error(
            "郵便番号",
            f"町字「{district}」の郵便番号ではありません（{codes}）",
            f"a postal code of {district}: {sorted(c.districts[district])}",
        )
    return Household(
        id=r.ident("世帯番号"),
        town_code=c.town_code,
        district=district,
        address=r.text("住所_番地以下", required=True),
        postal_code=postal_code,
        head_id=r.ident("世帯主_宛名番号"),
    )


# ---------------------------------------------------------------------------- 住民

_FOREIGN = (
    "国籍・地域",
    "30条45規定区分",
    "在留資格",
    "在留期間等",
    "在留期間等の満了の日",
    "通称",
    "通称_フリガナ",
)

JUMIN: FileSpec[Resident] = FileSpec(
    name="jumin.csv",
    attribute="residents",
    header=(
        "宛名番号",
        "世帯番号",
        "住民種別",
        "氏名",
        "氏名_フリガナ",
        "氏名_フリガナ_確認済",
        "生年月日",
        "性別",
        "続柄",
        "住民となった年月日",
        "住定年月日",
        "届出年月日",
        "転入前住所",
        "住民票コード",
        "個人番号",
        "本籍",
        "筆頭者",
        "旧氏",
        "旧氏_フリガナ",
        *_FOREIGN,
        "消除事由",
        "消除年月日",
        "転出先住所",
    ),
    key=lambda p: (p.id,),
    to_row=lambda p: _resident_row(p),
    from_row=lambda r, c: _resident(r, c),
)


def _resident_row(p: Resident) -> list[str]:
    f, gone = p.foreign, p.removal
    foreign = (
        ["", "", "", "", "", "", ""]
        if f is None
        else [
            f.nationality,
            f.status,
            f.residence_status,
            f.period_of_stay,
            fmt_date(f.expiry),
            f.alias,
            f.alias_kana,
        ]
    )
    removal = (
        ["", "", ""] if gone is None else [gone.reason.value, fmt_date(gone.date), gone.destination]
    )
    return [
        p.id,
        p.household_id,
        p.kind.value,
        p.name,
        p.kana,
        fmt_bool(p.kana_certified),
        fmt_date(p.birth_date),
        p.sex.value,
        p.relationship,
        fmt_date(p.became_resident),
        fmt_date(p.address_set),
        fmt_date(p.notified),
        p.previous_address,
        p.juminhyo_code,
        p.my_number,
        p.honseki,
        p.hittosha,
        p.former_surname,
        p.former_surname_kana,
        *foreign,
        *removal,
    ]


def _resident(r: Row, c: Context) -> Resident:
    kind = r.choice("住民種別", ResidentKind)
    certified = r.boolean("氏名_フリガナ_確認済")
    code = r.raw("住民票コード")
    if not is_valid_juminhyo_code(code):
        raise r.error(
            "住民票コード",
            "住民票コードは半角数字11桁で、検査数字が合う必要があります",
            "11 ASCII digits with a valid check digit",
            show=False,
        )
    number = r.raw("個人番号")
    if not is_valid_my_number(number):
        raise r.error(
            "個人番号",
            "個人番号は半角数字12桁で、検査数字が合っている必要があります",
            "12 ASCII digits with a valid check digit",
            show=False,
        )
    foreign: ForeignResidentItems | None = None
    if kind is ResidentKind.FOREIGN:
        foreign = ForeignResidentItems(
            nationality=r.text("国籍・地域", required=True),
            status=r.text("30条45規定区分", required=True),
            residence_status=r.text("在留資格"),
            period_of_stay=r.text("在留期間等"),
            expiry=r.optional_day("在留期間等の満了の日"),
            alias=r.text("通称"),
            alias_kana=r.kana("通称_フリガナ"),
        )
    else:
        for column in _FOREIGN:
            if r.raw(column):
                raise r.error(
                    column,
                    "日本人住民には外国人住民の項目を書けません",
                    "empty for a Japanese resident",
                )
    honseki, hittosha = r.text("本籍"), r.text("筆頭者")
    if kind is ResidentKind.FOREIGN and (honseki or hittosha):
        column = "本籍" if honseki else "筆頭者"
        raise r.error(
            column, "外国人住民には本籍・筆頭者を書けません", "empty for a foreign resident"
        )
    removal: Removal | None = None
    reason, when = r.raw("消除事由"), r.optional_day("消除年月日")
    if reason or when is not None:
        if when is None:
            raise r.error(
                "消除年月日",
                "消除事由があるときは消除年月日も必要です",
                "a date when 消除事由 is set",
            )
        removal = Removal(
            reason=r.choice("消除事由", RemovalReason), date=when, destination=r.text("転出先住所")
        )
    elif r.raw("転出先住所"):
        raise r.error(
            "転出先住所", "消除されていない住民に転出先は書けません", "empty unless 消除事由 is set"
        )
    kana = r.kana("氏名_フリガナ", required=certified)
    return Resident(
        id=r.ident("宛名番号"),
        town_code=c.town_code,
        household_id=r.ident("世帯番号"),
        name=r.text("氏名", required=True),
        kana=kana,
        kana_certified=certified,
        birth_date=r.day("生年月日"),
        sex=r.choice("性別", Sex),
        relationship=r.text("続柄", required=True),
        became_resident=r.day("住民となった年月日"),
        address_set=r.day("住定年月日"),
        notified=r.day("届出年月日"),
        previous_address=r.text("転入前住所"),
        juminhyo_code=code,
        my_number=number,
        kind=kind,
        honseki=honseki,
        hittosha=hittosha,
        former_surname=r.text("旧氏"),
        former_surname_kana=r.kana("旧氏_フリガナ"),
        foreign=foreign,
        removal=removal,
    )
