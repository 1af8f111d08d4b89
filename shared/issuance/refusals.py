"""Every reason a document is not handed over now, in Japanese, for two audiences.

Each code has a reason for the clerk and what to tell the applicant. They differ on
purpose where a block is involved: the clerk learns that a 支援措置 applies, the
applicant hears only that the request cannot be met — telling a 相手方 (or an agent
sent by one) that a measure exists would itself disclose that the person is protected.

The catalogue is also the source of the refusal table in docs/issuance-rules.md, and
tests check that every code a decision can produce is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

_NEUTRAL = "申し訳ありませんが、このご請求にはお応えできません。"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a document is not handed over now (refused, or taken as intake only)."""

    code: str
    reason: str  # for the clerk
    tell_applicant: str


# code: (reason for the clerk, what to tell the applicant); `{name}` placeholders are
# filled by `refusal(code, **values)`.
CATALOGUE: dict[str, tuple[str, str]] = {
    "drill_real_data": (
        "訓練モードでは訓練用（架空）住民のデータしか扱えません。",
        "訓練中のため、この端末では実際の証明書は発行できません。",
    ),
    "synthetic_in_live": (
        "訓練用（架空）のデータからは本番の証明書を発行できません。訓練モードで操作してください。",
        "この端末では発行できません。職員がご案内します。",
    ),
    "subject_unknown": (
        "対象者が当町の記録に見つかりません（宛名番号 {resident_id}）。",
        "お探しの方の記録が見つかりません。氏名・生年月日・住所をもう一度ご確認ください。",
    ),
    "block_adversary": (
        "請求者は対象者の支援措置の相手方です。交付できません。支援措置の存在は伝えないでください。",
        _NEUTRAL,
    ),
    "block_protected": (
        "対象者に支援措置があります。交付できるのは、措置を受けている本人が窓口で顔写真付きの"
        "本人確認書類を示した場合だけです（代理人・第三者・郵送は不可）。",
        _NEUTRAL,
    ),
    "block_self_needs_photo": (
        "支援措置対象者本人の請求ですが、窓口での顔写真付き本人確認書類による確認が必要です。",
        "顔写真付きの本人確認書類（マイナンバーカード、運転免許証など）をお持ちのうえ、"
        "窓口でご請求ください。",
    ),
    "blocks_stale": (
        "この端末の支援措置データの確認から {age} が経過し、上限 {limit} を超えています。"
        "本人以外への交付はできません（新しい支援措置を見落としているおそれ）。",
        "現在、ご本人以外からのご請求にはお応えできません。時間をおいて、"
        "あらためてご請求ください。",
    ),
    "identity_photo_missing": (
        "顔写真付きの本人確認書類が示されていません。",
        "顔写真付きの本人確認書類1点、または健康保険の資格確認書など2点をお示しください。",
    ),
    "identity_two_documents": (
        "写真のない本人確認書類は、種類の異なるもの2点が必要です。",
        "本人確認書類をもう1点お示しください。",
    ),
    "identity_disaster_only": (
        "口頭質問・職員面識による本人確認は、災害モードの宣言中だけ使えます。",
        "本人確認書類をお示しください。",
    ),
    "identity_channel": (
        "本人確認の方法が請求の方法と合いません（郵送請求は本人確認書類の写しの同封、"
        "窓口では書類の提示）。",
        "本人確認書類をお示しください（郵送の場合は写しを同封してください）。",
    ),
    "self_not_subject": (
        "「本人」の請求ですが、請求者が対象者として確認されていません。",
        "ご本人であることを確認できる書類をお示しください。",
    ),
    "household_not_member": (
        "請求者が対象者と同じ世帯に属していません。同一世帯員としては請求できません。",
        "同じ世帯の方以外は、委任状をお持ちいただくか、利用目的を明らかにしてご請求ください。",
    ),
    "poa_missing": (
        "任意代理人の請求ですが、委任状がありません。",
        "ご本人が書いた委任状をお持ちください。",
    ),
    "poa_unsigned": (
        "委任状に委任者（本人）の自署または記名押印がありません。",
        "ご本人の署名のある委任状をお持ちください。",
    ),
    "poa_undated": (
        "委任状の作成日がないか、未来の日付です。",
        "作成日の書かれた委任状をお持ちください。",
    ),
    "poa_expired": (
        "委任状の作成日から {days} 日を超えています。",
        "新しい委任状をお持ちください。",
    ),
    "poa_agent_mismatch": (
        "委任状の代理人の氏名（{named}）が窓口に来た方と一致しません。",
        "委任状に書かれた代理人ご本人がお越しください。",
    ),
    "poa_scope": (
        "委任状の委任事項に「{document}」が含まれていません。",
        "委任事項に請求する証明書を書いた委任状をお持ちください。",
    ),
    "poa_items": (
        "委任状に「{items}」の記載を求める旨が書かれていません。",
        "その項目が必要な場合は、委任状にその旨を書いてください。",
    ),
    "legal_missing": (
        "法定代理人の請求ですが、代理権の根拠（親権者・成年後見人等）と確認書類の記録がありません。",
        "戸籍謄本や登記事項証明書など、代理権を確認できる書類をお持ちください。",
    ),
    "third_party_purpose": (
        "第三者請求には請求事由と具体的な利用目的が必要です。",
        "請求の理由と利用目的（提出先を含む）を具体的にお書きください。",
    ),
    "professional_details": (
        "職務上請求には士業の種別、登録番号、請求書の通し番号、利用目的、提出先が必要です。",
        "職務上請求書の記入漏れを補ってください。",
    ),
    "official_details": (
        "公用請求には請求機関、担当者、根拠法令、利用目的が必要です。",
        "公用請求書の記入漏れを補ってください。",
    ),
    "copies_invalid": (
        "通数が正しくありません（1通以上）。",
        "必要な通数をお知らせください。",
    ),
    "items_not_offered": (
        "「{document}」では「{items}」を選んで記載することはできません。",
        "この証明書には、その項目は記載できません。",
    ),
    "requester_not_entitled": (
        "{requester}の方には「{document}」を交付できません。",
        "この証明書はご本人（または委任を受けた方）からのご請求に限ります。",
    ),
    "intake_pending": (
        "対象者について未処理の{kinds}があります。処理が済むまで交付できません。",
        "届出の処理が済みしだい交付します。受付のうえ、後日郵送することもできます。",
    ),
    "juminhyo_for_removed": (
        "対象者の住民票は除票になっています（{reason}）。",
        "除票の写しとしてご請求ください。",
    ),
    "johyo_for_living": (
        "対象者は除票ではありません。",
        "住民票の写しとしてご請求ください。",
    ),
    "fuhyo_other_honseki": (
        "対象者の本籍は当町にないため、戸籍の附票の写しは発行できません。",
        "本籍地の市区町村にご請求ください。",
    ),
    "restricted_items": (
        "個人番号・住民票コードは、本人と同一世帯員（代理人を含む）以外には交付できません。",
        "個人番号・住民票コードを省略した写しであればご請求いただけます。",
    ),
    "tax_year_missing": (
        "年度が指定されていません。",
        "必要な年度をお知らせください。",
    ),
    "tax_year_not_open": (
        "{fiscal_year}年度の証明書は{fiscal_year}年6月1日から発行できます。",
        "{fiscal_year}年度分は6月から発行します。前年度分が必要な場合はお申し出ください。",
    ),
    "tax_other_town": (
        "{fiscal_year}年1月1日に当町に住所がなかったため、当町では{fiscal_year}年度の"
        "証明書を発行できません。",
        "{fiscal_year}年1月1日にお住まいだった市区町村にご請求ください。",
    ),
    "tax_no_assessment": (
        "{fiscal_year}年度の課税資料がありません。",
        "この年度の証明書は発行できません。税務担当から後日ご連絡します。",
    ),
    "tax_not_filed": (
        "{fiscal_year}年度の住民税の申告がなく、誰の扶養にもなっていないため証明できません。",
        "住民税の申告をしていただければ発行できます。",
    ),
    "tax_taxable": (
        "{fiscal_year}年度は課税されているため、非課税証明書は発行できません。",
        "課税（所得）証明書をご請求ください。",
    ),
    "tax_kind_missing": (
        "納税証明書の税目が指定されていません。",
        "必要な税目（住民税、固定資産税など）をお知らせください。",
    ),
    "vehicle_unknown": (
        "指定の車両が見つからないか、対象者の所有ではありません。",
        "車検証をお示しください。",
    ),
    "vehicle_unpaid": (
        "この車両の軽自動車税に未納があります（{years}年度）。",
        "未納分を納付いただければ発行できます（納付直後は領収書をお持ちください）。",
    ),
    "nhi_not_member": (
        "対象者は当町の国民健康保険の被保険者ではありません。",
        "加入している医療保険の保険者にお問い合わせください。",
    ),
    "nhi_no_my_number_insurance": (
        "マイナ保険証の登録がないため、資格情報のお知らせではなく資格確認書の対象です。",
        "資格確認書を交付しますので、そちらをご請求ください。",
    ),
    "nhi_has_my_number_insurance": (
        "マイナ保険証をお持ちのため、資格確認書ではなく資格情報のお知らせの対象です。",
        "資格情報のお知らせを交付しますので、そちらをご請求ください。",
    ),
    # Intake only: nothing handed over now, the request is taken.
    "intake_only_document": (
        "「{document}」は現在この端末では発行できません（受付のみ）。",
        "受付いたします。処理が済みしだい郵送またはご連絡します。",
    ),
    "intake_registry_stale": (
        "記録が最新でない状態（{as_of} 時点）のため、第三者・職務上請求は受付のみです。",
        "受付いたします。記録を確認のうえ、後日郵送します。",
    ),
}


def refusal(code: str, **values: object) -> Refusal:
    reason, tell = CATALOGUE[code]
    return Refusal(code, reason.format(**values), tell.format(**values))
