"""The seed report's acceptance table (../shared/ACCEPTANCE.md): 34 checks per town, the
report's measured counter times, and which document each issuance row stands for.

`ROWS` is the table as restored; `SEED_SECONDS` the report's "search → preview on screen"
times per town, document and situation. `renkei drill` reports exactly these rows.
"""

# ruff: noqa: E501 — the evidence and report lines are Japanese sentences, kept whole for grep

from __future__ import annotations

from dataclasses import dataclass

TOWNS = ("15307", "15405", "15581")
TOWN_NAMES = {"15307": "聖籠町", "15405": "出雲崎町", "15581": "関川村"}

# Situations: the report's four columns of measured times.
NORMAL, CASE1, CASE2, CASE3 = "normal", "case1", "case2", "case3"
SITUATIONS = (NORMAL, CASE1, CASE2, CASE3)
SITUATION_LABELS = {
    NORMAL: "平常時",
    CASE1: "ケース1 自庁ダウンリカバリ",
    CASE2: "ケース2 他町村からクラウド経由",
    CASE3: "ケース3 連携町村システム",
}

# Documents: the issuance rows' kinds, in the report's order.
JUMINHYO, TAX, NHI, LIST = "juminhyo", "tax", "nhi", "list"
DOCUMENTS = (JUMINHYO, TAX, NHI, LIST)
DOCUMENT_LABELS = {
    JUMINHYO: "住民票",
    TAX: "納税証明",
    NHI: "資格確認書",
    LIST: "全住民一覧",
}


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    group: str
    check: str  # as in the report
    renkei: str  # what it means for Renkei
    situation: str | None = None  # the case the row is run in
    document: str | None = None  # issuance rows: which document
    timing: bool = False  # "response good enough": the case's documents timed


ROWS: tuple[Row, ...] = (
    Row(1, "クラウド環境への移行", "基幹系システムをクラウドセンターへ移行し利用できる",
        "ハブが各町村の基幹系出力から取り込んだ住民記録を保持している"),
    Row(2, "自治体データのバックアップ", "各町村のバックアップをクラウドセンターで正しく処理・保管",
        "ハブに全文書の暗号化された履歴があり、復元できる"),
    Row(3, "緊急用サーバの環境", "ダウンリカバリサーバ・連携町村サーバが各町村で稼働",
        "町村ごとに連携ボックスが稼働し、登録（エンロール）済み"),
    Row(4, "ダウンリカバリシステムの環境構築", "自庁のバックアップをダウンリカバリサーバへ転送・保管",
        "自町村の複製が自庁のボックスにある"),
    Row(5, "〃", "前日の状態で基幹系環境を構築できる",
        "自町村の複製が最後の同期時点で開き、データの時点が表示される"),
    Row(6, "連携町村システムの環境構築", "他町村のバックアップを暗号化して連携サーバへ転送・保管",
        "連携先町村の複製が各ボックスに封印されたまま保管されている"),
    Row(7, "〃", "暗号化されたバックアップを復号できる",
        "訪問職員の資格情報（アクティベーション下）で開く"),
    Row(8, "〃", "復号したデータで連携町村の環境が前日の状態で稼働",
        "開いた複製がその町村の窓口業務を提供する"),
    Row(9, "ケース1", "通常のID・パスワードでログイン",
        "ハブに到達できない状態で自庁ボックスにログイン", CASE1),
    Row(10, "ケース1", "OSを問わずクライアントが動作（当時 XP / Win7）",
        "古いブラウザを含め任意のブラウザ。JavaScriptなしで主要な流れが動く", CASE1),
    Row(11, "ケース1", "自町村の外字が正しく表示される", "異体字が画面と紙で正しい", CASE1),
    Row(12, "ケース1", "住民票の発行", "住民票の写し", CASE1, JUMINHYO),
    Row(13, "ケース1", "税証明書の発行", "税証明書", CASE1, TAX),
    Row(14, "ケース1", "国民健康保険 保険証の発行", "資格確認書（保険証は2024年12月廃止）", CASE1, NHI),
    Row(15, "ケース1", "全住民一覧の発行", "全住民一覧", CASE1, LIST),
    Row(16, "ケース1", "窓口業務に耐えるレスポンス", "文書ごとに計測", CASE1, timing=True),
    Row(17, "ケース2", "受入町村の端末・プリンタで接続",
        "訪問職員が受入町村のLANで、受入町村のプリンタを使う", CASE2),
    Row(18, "ケース2", "OSを問わずクライアントが動作", "10と同じ", CASE2),
    Row(19, "ケース2", "通常のID・パスワードでログイン", "ハブ到達可：複製は最新", CASE2),
    Row(20, "ケース2", "自町村の外字が正しく表示される", "11と同じ", CASE2),
    Row(21, "ケース2", "住民票の発行", "住民票の写し", CASE2, JUMINHYO),
    Row(22, "ケース2", "税証明書の発行", "税証明書", CASE2, TAX),
    Row(23, "ケース2", "保険証の発行", "資格確認書", CASE2, NHI),
    Row(24, "ケース2", "全住民一覧の発行", "全住民一覧", CASE2, LIST),
    Row(25, "ケース2", "窓口業務に耐えるレスポンス", "計測", CASE2, timing=True),
    Row(26, "ケース3", "受入町村の端末・プリンタで接続", "17と同じ（ハブ停止）", CASE3),
    Row(27, "ケース3", "自町村以外の連携町村システムにはログインできない",
        "職員は自町村だけを開ける。受入町村も第三の町村も開けない", CASE3),
    Row(28, "ケース3", "自町村の外字が正しく表示される", "11と同じ", CASE3),
    Row(29, "ケース3", "連携サーバ上の自町村システムに通常のID・パスワードでログイン",
        "訪問職員自身の資格情報で、アクティベーション下", CASE3),
    Row(30, "ケース3", "住民票の発行", "住民票の写し", CASE3, JUMINHYO),
    Row(31, "ケース3", "税証明書の発行", "税証明書", CASE3, TAX),
    Row(32, "ケース3", "保険証の発行", "資格確認書", CASE3, NHI),
    Row(33, "ケース3", "全住民一覧の発行", "全住民一覧", CASE3, LIST),
    Row(34, "ケース3", "窓口業務に耐えるレスポンス", "計測", CASE3, timing=True),
)  # fmt: skip

ROW_BY_NUMBER = {row.number: row for row in ROWS}

# The report's measured times, seconds from search to preview on screen.
_SEED = {
    "15307": {JUMINHYO: (12, 12, 14, 15), TAX: (17, 18, 18, 18), NHI: (27, 24, 23, 22),
              LIST: (9, 10, 10, 9)},
    "15405": {JUMINHYO: (12, 12, 12, 13), TAX: (17, 23, 20, 21), NHI: (27, 30, 28, 28),
              LIST: (9, 10, 10, 10)},
    "15581": {JUMINHYO: (13, 14, 14, 15), TAX: (16, 17, 16, 17), NHI: (21, 20, 20, 20),
              LIST: (6, 6, 6, 6)},
}  # fmt: skip
SEED_SECONDS: dict[str, dict[str, dict[str, float]]] = {
    town: {
        situation: {doc: float(times[doc][i]) for doc in DOCUMENTS}
        for i, situation in enumerate(SITUATIONS)
    }
    for town, times in _SEED.items()
}

# The report's recovery times (travel included) and the done-when targets (travel excluded).
SEED_RECOVERY = {
    CASE1: "約5分",
    CASE2: "約2〜3.5時間（移動を含む）",
    CASE3: "約3〜4.5時間（移動を含む）",
}
RECOVERY_TARGET_S = {CASE1: 10.0, CASE2: 60.0, CASE3: 60.0}
DATA_LOSS_TARGET_S = 60.0


def issuance_row(situation: str, document: str) -> Row:
    return next(r for r in ROWS if r.situation == situation and r.document == document)


def timing_row(situation: str) -> Row:
    return next(r for r in ROWS if r.situation == situation and r.timing)
