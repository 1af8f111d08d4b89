"""国保 and 避難行動要支援者: kokuho.csv, yoshiensha.csv."""

from __future__ import annotations

from shared.model import NhiMember, SupportNeed

from .codec import Row, fmt_bool, fmt_date
from .spec import Context, FileSpec

# ---------------------------------------------------------------------------- 国保・要支援者

KOKUHO: FileSpec[NhiMember] = FileSpec(
    name="kokuho.csv",
    attribute="nhi_members",
    header=(
        "宛名番号",
        "記号",
        "番号",
        "枝番",
        "資格取得年月日",
        "資格喪失年月日",
        "負担割合",
        "負担割合_発効期日",
        "有効開始年月日",
        "有効終了年月日",
        "限度区分",
        "マイナ保険証",
    ),
    key=lambda m: (m.resident_id,),
    to_row=lambda m: [
        m.resident_id,
        m.symbol,
        m.number,
        m.branch,
        fmt_date(m.acquired),
        fmt_date(m.lost),
        str(m.copay_percent),
        fmt_date(m.copay_effective),
        fmt_date(m.valid_from),
        fmt_date(m.valid_until),
        m.limit_category,
        fmt_bool(m.has_my_number_insurance),
    ],
    from_row=lambda r, c: _nhi(r, c),
)


def _nhi(r: Row, c: Context) -> NhiMember:
    member = NhiMember(
        resident_id=r.ident("宛名番号"),
        town_code=c.town_code,
        symbol=r.text("記号", required=True),
        number=r.text("番号", required=True),
        branch=r.digits("枝番", 2),
        acquired=r.day("資格取得年月日"),
        lost=r.optional_day("資格喪失年月日"),
        copay_percent=r.integer("負担割合"),
        copay_effective=r.optional_day("負担割合_発効期日"),
        valid_from=r.day("有効開始年月日"),
        valid_until=r.day("有効終了年月日"),
        limit_category=r.text("限度区分"),
        has_my_number_insurance=r.boolean("マイナ保険証"),
    )
    if member.copay_percent not in (10, 20, 30):
        raise r.error("負担割合", "負担割合は 10、20、30（％）のいずれかです", "10, 20 or 30")
    if member.lost is not None and member.lost < member.acquired:
        raise r.error("資格喪失年月日", "喪失日が取得日より前です", "lost on or after acquired")
    if member.valid_until < member.valid_from:
        raise r.error(
            "有効終了年月日",
            "有効期間の終わりが始まりより前です",
            "valid_until on or after valid_from",
        )
    return member


YOSHIENSHA: FileSpec[SupportNeed] = FileSpec(
    name="yoshiensha.csv",
    attribute="support_needs",
    header=("宛名番号", "要支援事由", "連絡先", "平常時名簿提供同意"),
    key=lambda n: (n.resident_id,),
    to_row=lambda n: [n.resident_id, n.reason, n.contact, fmt_bool(n.consented)],
    from_row=lambda r, c: SupportNeed(
        resident_id=r.ident("宛名番号"),
        town_code=c.town_code,
        reason=r.text("要支援事由", required=True),
        contact=r.text("連絡先"),
        consented=r.boolean("平常時名簿提供同意"),
    ),
)
