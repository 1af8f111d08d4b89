"""The drill itself: the seed report's three failure cases injected into a local
federation of real processes, and the 34 rows checked for every town through the boxes'
real pages.

    set-up      rows 1–3 (hub, backups, boxes enrolled)
    平常時       every town at its own box: rows 4–5, the normal counter times
    ケース1      the town's line to the hub cut (fault proxy down): rows 9–16 at its own box
    ケース2      the town's box killed, hub up: its clerk at a partner box (activation
                code from the representative, the host supervisor's approval): rows 7–8,
                17–25
    ケース3      the hub killed too: the clerk at the other partner box: rows 26–34
    finally     row 6 (partner replicas sealed on every box: files scanned)

Recovery time per case and town: from the injected failure to the first certificate in
hand, with the human steps (a password typed, an activation code, an approval) done by
the script at machine speed — their count is reported, their human time is not in it.
Data loss: edits are made at each town's own box throughout (`EditWriter`); after the
failover, the newest of them the serving box holds is compared with the last one made
before the failure.
"""

# ruff: noqa: E501 — the evidence and report lines are Japanese sentences, kept whole for grep

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from renkei.drill import pdfcheck
from renkei.drill.client import Counter, FlowError, Issued, alert_text, client_for
from renkei.drill.evidence import Check, RowResult, unverified
from renkei.drill.federation import HOSTS, EditWriter, LocalFederation, held_edits
from renkei.drill.rows import (
    CASE1,
    CASE2,
    CASE3,
    DOCUMENT_LABELS,
    DOCUMENTS,
    JUMINHYO,
    LIST,
    NHI,
    NORMAL,
    ROWS,
    SEED_SECONDS,
    SITUATION_LABELS,
    TAX,
    TOWN_NAMES,
    issuance_row,
    timing_row,
)

UNIQUE_NUMBER = "発行番号の一意性"
NO_SUBJECT = "この町村の合成データにこの文書の対象者がいません"
# The report's documents → the counter's document keys (docs/counter.md); the 全住民一覧
# comes from the districts page instead.
DOCUMENT_KEYS = {JUMINHYO: "juminhyo", TAX: "nozei", NHI: "shikaku_kakunin"}
AGENTS = {NORMAL: "current", CASE1: "xp", CASE2: "win7", CASE3: "current"}
GLYPH_ROWS = {CASE1: 11, CASE2: 20, CASE3: 28}
NO_JS_ROWS = {CASE1: 10, CASE2: 18}
PRINTER_ROWS = {CASE2: 17, CASE3: 26}


@dataclass
class HumanStep:
    kind: str  # password | activation_code | supervisor_approval
    label: str
    town: str
    situation: str
    seconds: float  # the machine's part of the step


@dataclass
class CaseOutcome:
    town: str
    situation: str
    host: str  # the box that served the counter
    injected: str
    recovery_s: float | None = None
    human_steps: int = 0
    data_loss_s: float | None = None
    edits_made: int = 0
    edits_visible: int = 0
    last_edit_before: str = ""
    newest_visible: str = ""
    hub_as_of: str = ""
    shown_as_of: str = ""
    note: str = ""


@dataclass
class Drill:
    fed: LocalFederation
    towns: tuple[str, ...]
    cases: tuple[str, ...] = (CASE1, CASE2, CASE3)
    budget_scale: float = 1.0
    say: Callable[[str], None] = print
    rows: dict[tuple[str, int], RowResult] = field(default_factory=dict)
    times: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    outcomes: list[CaseOutcome] = field(default_factory=list)
    human: list[HumanStep] = field(default_factory=list)
    writers: dict[str, EditWriter] = field(default_factory=dict)
    hub_towns: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    hub_down_at: float = 0.0
    error: str = ""
    _last_shown: dict[tuple[str, str], str] = field(default_factory=dict)
    # every 発行番号 handed over in this drill, per town: where it was issued
    numbers: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for town in self.towns:
            for row in ROWS:
                seed = None
                if row.situation and row.document:
                    seed = SEED_SECONDS[town][row.situation][row.document]
                self.rows[(town, row.number)] = RowResult(row.number, town, seed_seconds=seed)
            self.times[town] = {}

    def row(self, town: str, number: int) -> RowResult:
        return self.rows[(town, number)]

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        self.started = time.time()
        fed = self.fed
        try:
            fed.prepare()
            self.say("ハブ・連携ボックス・プリンタを起動しています")
            fed.start()
            self._hub_rows()
            for town in self.towns:
                self._start_edits(town)
            for town in self.towns:
                self._normal(town)
            if CASE1 in self.cases:
                for town in self.towns:
                    self._case1(town)
            if CASE2 in self.cases:
                for town in self.towns:
                    self._visiting(town, CASE2)
            if CASE3 in self.cases:
                self.say("ケース3: ハブ（クラウドセンター）を停止します")
                self.hub_down_at = fed.kill_hub()
                for town in self.towns:
                    self._visiting(town, CASE3)
            for town in self.towns:
                self._sealed_replicas(town)
        except Exception as exc:  # the report still says what was seen before
            self.error = f"{type(exc).__name__}: {exc}"
            self.say(f"訓練を中断しました: {self.error}")
        finally:
            for writer in self.writers.values():
                writer.stop()
            fed.close()
            self.finished = time.time()

    # ------------------------------------------------------------------ set-up rows

    def _hub_rows(self) -> None:
        fed = self.fed
        with client_for(fed.hub_url, fed.ca_file) as hub:
            listing = hub.get("/api/towns")
            federation = hub.get("/api/federation").json()
        self.hub_towns = {t["code"]: t for t in listing.json()}
        for town in self.towns:
            export = fed.exports[town]
            one = self.row(town, 1).add(Check("ハブが取り込んだ住民記録"))
            found = self.hub_towns.get(town)
            one.see("request", f"GET {fed.hub_url}/api/towns → {listing.status_code}"
                    + (f"（{found['name']}: 文書 {len(found['documents'])}、時点 {found['as_of']}）"
                       if found else "（この町村なし）"), status=listing.status_code)  # fmt: skip
            one.ok(
                found is not None and len(found["documents"]) > 0,
                "ハブにこの町村の記録がありません",
            )
            if found:
                one.ok(found["as_of"] == export.exported_at,
                       f"時点 {found['as_of']} が基幹系の出力 {export.exported_at} と違います")  # fmt: skip
            self._backup_row(town, federation)
            self._box_row(town)

    def _backup_row(self, town: str, federation: dict[str, Any]) -> None:
        """Row 2: every document is at the hub sealed to the town — the blobs of its sync
        log, signed by the hub's writer key — and the operator's custody restores the
        town's records from them: both as the hub keeps them at rest (hub.db, and
        custody.sealed opened with the operator's passphrase), not the drill's copies.
        A history or key missing there is a backup that cannot be restored: ×."""
        from nacl.signing import VerifyKey

        from cloud.custody import Custody, CustodyError
        from shared.storage import MemoryStorage, SqliteStorage
        from shared.sync.identity import Identity, writer_id_of
        from shared.sync.log import BlobLog
        from shared.sync.replica import SyncReplica

        fed = self.fed
        check = self.row(town, 2).add(Check("ハブの暗号化文書から復元"))
        export = fed.exports[town]
        writer = federation.get("hub_writer")
        hub_writer = writer_id_of(VerifyKey(bytes.fromhex(writer))) if writer else ""
        probe = [export.residents[0].name.encode(), export.residents[0].juminhyo_code.encode()]
        storage = SqliteStorage(fed.hub_data / "hub.db")  # read beside the running hub
        try:
            items = BlobLog(storage).load_town(town)
        finally:
            storage.close()
        size = sum(len(blob) for _, blob in items)
        sealed = sum(all(p not in blob for p in probe) for _, blob in items)
        by_hub = sum(ref.writer == hub_writer for ref, _ in items)
        check.see("request", f"ハブの同期ログ {town}: ブロブ {len(items)} 件（ハブの署名 {by_hub} 件）",
                  blobs=len(items), by_hub=by_hub)  # fmt: skip
        try:
            ring = Custody.load(fed.hub_data, fed.hub_passphrase).rings.get(town)
            kept = f"エポック {', '.join(map(str, ring.epochs))}" if ring else "なし"
        except CustodyError as exc:
            ring, kept = None, f"開けません（{exc}）"
        check.see("document", f"ハブの鍵の保管ファイル（{fed.hub_data.name}/custody.sealed）の {town} の鍵: {kept}",
                  epochs=list(ring.epochs) if ring else [])  # fmt: skip
        check.ok(
            ring is not None, "ハブの鍵の保管にこの町村の鍵がなく、バックアップを復号できません"
        )
        reader = SyncReplica(MemoryStorage(), Identity.generate())
        reader.log.add_many(blob for _, blob in items)
        registry = reader.open_town(ring) if ring is not None else None
        for flag in reader.flags:
            check.ok(
                False, f"{flag.writer[:16]}… #{flag.seq} を復号・復元できません: {flag.detail}"
            )
        restored = sum(1 for _ in registry.objects("residents")) if registry else 0
        check.see("document", f"暗号化ブロブ {len(items)} 件・{size:,} バイト（平文の氏名・住民票コードなし: "
                  f"{sealed}/{len(items)}）をハブの保管する町村の鍵で復元 → 住民 {restored} 人"
                  f"（基幹系出力 {len(export.residents)} 人）",
                  documents=len(registry.documents) if registry else 0, bytes=size,
                  restored=restored, exported=len(export.residents))  # fmt: skip
        check.ok(len(items) > 0, "ハブに町村の同期ログ（暗号化された履歴）がありません")
        check.ok(sealed == len(items), "平文の文書があります")
        check.ok(by_hub > 0, "ハブの署名した文書がありません")
        check.ok(restored == len(export.residents), "復元した住民数が基幹系出力と違います")

    def _box_row(self, town: str) -> None:
        """Row 3: the town's box answers and proves its enrolment (the federation root's
        certificate, a signature over a fresh nonce bound to its TLS certificate), and the
        hub's registry holds that key as the box's unrevoked enrolment (what the hub
        takes the box's audit anchors and sync under)."""
        from edge.identity_api import server_cert_der
        from edge.peers import PeerError, verify_answer

        fed = self.fed
        box = fed.boxes[town]
        check = self.row(town, 3).add(Check("ボックス稼働・登録"))
        with client_for(box.url, fed.ca_file) as http:
            health = http.get("/api/health")
            check.see("request", f"GET {box.url}/api/health → {health.status_code} {health.text[:80]}",
                      status=health.status_code)  # fmt: skip
            check.ok(health.status_code == 200 and health.json().get("town") == town,
                     "ボックスが応答しません")  # fmt: skip
            nonce = secrets.token_hex(32)
            answer = http.get("/api/identity", params={"nonce": nonce})
        try:
            _, cert = verify_answer(
                answer.json(), nonce=nonce, root=fed.federation_root.verify_key,
                now=datetime.now().astimezone(), tls_der=server_cert_der(box.tls / "server.crt"),
            )  # fmt: skip
            check.see("request", f"GET /api/identity → {answer.status_code}: 登録証明 {cert.subject}"
                      f"（{cert.town}、連携ルート署名・TLS証明書に結合）を確認", box=cert.subject)  # fmt: skip
            check.ok(cert.subject == box.box_id and cert.town == town, "別のボックスの証明書です")
            self._hub_knows(check, cert)
        except (PeerError, ValueError) as exc:
            check.see(
                "refusal", f"GET /api/identity → {answer.status_code}: 登録を確認できません: {exc}"
            )
            check.ok(False, "登録を確認できません")

    def _hub_knows(self, check: Check, cert: Any) -> None:
        from cloud.anchors import AnchorRefused, enrolled_box_key
        from cloud.enrolment import Registry

        registry = Registry(self.fed.hub_data / "hub.db")
        try:
            enrolled_box_key(registry, cert.subject, cert.verify_key, time.time())
            check.see("hub", f"ハブの登録簿: {cert.subject} はこの鍵で登録済み（失効なし、"
                      "連携ルートまで検証）", box=cert.subject)  # fmt: skip
        except AnchorRefused as exc:
            check.see("refusal", f"ハブの登録簿: {cert.subject} を確認できません: {exc}")
            check.ok(False, "ハブに登録されていません")
        finally:
            registry.close()

    # ------------------------------------------------------------------ edits

    def _start_edits(self, town: str) -> None:
        writer = EditWriter(self.fed.boxes[town], self.fed.custody.ring(town).public)
        if town in self.writers:
            writer.edits = self.writers[town].edits  # one history per town across restarts
        self.writers[town] = writer
        writer.start()

    def _data_loss(self, outcome: CaseOutcome, town: str, failed_at: float) -> None:
        writer = self.writers[town]
        made = [e for e in writer.edits if e.at <= failed_at]
        outcome.edits_made = len(made)
        if not made:
            outcome.note = "障害前の編集がありません"
            return
        serving = self.fed.boxes[outcome.host]
        held = set(held_edits(serving, town, self.fed.boxes[town].identity.writer_id,
                              [e.seq for e in made]))  # fmt: skip
        visible = [e for e in made if e.seq in held]
        outcome.edits_visible = len(visible)
        last = made[-1]
        outcome.last_edit_before = _clock(last.at)
        if visible:
            newest = max(visible, key=lambda e: e.at)
            outcome.newest_visible = _clock(newest.at)
            outcome.data_loss_s = round(last.at - newest.at, 3)
        else:
            outcome.data_loss_s = round(last.at - made[0].at, 3)
            outcome.note = "障害前の編集が一件も見えません"

    # ------------------------------------------------------------------ 平常時

    def _normal(self, town: str) -> None:
        fed = self.fed
        box, clerk, subject = fed.boxes[town], fed.clerks[town].visitor, fed.subjects[town]
        self.say(f"平常時: {TOWN_NAMES[town]} 自庁ボックスで窓口業務")
        four = self.row(town, 4).add(Check("自町村の複製が自庁ボックスに"))
        five = self.row(town, 5).add(Check("最後の同期時点で開き、時点を表示"))
        held = _documents(box.data, town)
        hub_docs = len(self.hub_towns.get(town, {}).get("documents", []))
        four.see("scan", f"{box.box_id} の保管庫: {town} の封印文書 {held} 件（ハブ {hub_docs} 件）",
                 held=held, hub=hub_docs)  # fmt: skip
        four.ok(held > 0 and held >= hub_docs, "自町村の複製がそろっていません")
        with Counter(box.url, fed.ca_file, AGENTS[NORMAL]) as counter:
            if counter.login_check(four, town, clerk.login_id, clerk.password) is None:
                return
            self._human(
                "password", f"{clerk.login_id} が自庁ボックスでパスワード入力", town, NORMAL
            )
            page = counter.search_page(subject.kana)
            four.see("request", f"GET /?q={subject.kana} → {page.status_code}（{subject.resident_id} "
                     f"{'あり' if subject.resident_id in page.text else 'なし'}）",
                     status=page.status_code)  # fmt: skip
            four.ok(
                page.status_code == 200 and subject.resident_id in page.text, "検索で見つかりません"
            )
            self._as_of(five, town, page.text)
            self._issue_all(counter, town, NORMAL, None)

    def _as_of(self, check: Check, town: str, page: str) -> str:
        shown = _shown_as_of(page)
        expected = _as_of_label(self.hub_towns.get(town, {}).get("as_of", ""))
        check.see("request", f"画面の「データの時点」: {shown or '（表示なし）'}／ハブの時点: {expected}",
                  shown=shown, hub=expected)  # fmt: skip
        check.ok(bool(shown) and shown == expected, "データの時点が表示されないか、ハブと違います")
        return shown

    # ------------------------------------------------------------------ ケース1

    def _case1(self, town: str) -> None:
        fed = self.fed
        box, clerk = fed.boxes[town], fed.clerks[town].visitor
        self.say(f"ケース1: {TOWN_NAMES[town]} — クラウドセンターへの回線を切断")
        outcome = CaseOutcome(town, CASE1, town, "ハブへの回線切断（フォールトプロキシ停止）")
        failed_at = fed.cut(town)
        nine = self.row(town, 9).add(Check("ハブ不達で自庁ボックスにログイン"))
        try:
            reach = httpx.get(f"{box.proxy.url}/api/health", timeout=3)
            nine.see(
                "request",
                f"ボックスの回線からハブ: GET {box.proxy.url}/api/health → {reach.status_code}",
            )
            nine.ok(False, "回線を切ったのにハブに届きます")
        except httpx.HTTPError as exc:
            nine.see("refusal", f"ボックスの回線からハブ: 接続できません（{type(exc).__name__}）")
        try:
            with Counter(box.url, fed.ca_file, AGENTS[CASE1]) as counter:
                if counter.login_check(nine, town, clerk.login_id, clerk.password) is None:
                    return
                self._human("password", f"{clerk.login_id} がパスワード入力", town, CASE1)
                first = self._issue_all(counter, town, CASE1, self.row(town, NO_JS_ROWS[CASE1]))
            if first is not None:
                outcome.recovery_s = round(first - failed_at, 3)
            self._data_loss(outcome, town, failed_at)
            outcome.hub_as_of = self.hub_towns.get(town, {}).get("as_of", "")
            outcome.shown_as_of = self._last_shown.get((town, CASE1), "")
            outcome.human_steps = self._steps(town, CASE1)
            self.outcomes.append(outcome)
        finally:
            fed.cut(town, down=False)

    # ------------------------------------------------------------------ ケース2・3

    def _visiting(self, town: str, situation: str) -> None:
        """The town hall is down: its clerk goes to a partner town's box."""
        from shared.activation import issue_activation

        fed = self.fed
        host = HOSTS[town][0 if situation == CASE2 else 1]
        third = next(t for t in fed.boxes if t not in (town, host))
        clerks, host_clerks = fed.clerks[town], fed.clerks[host]
        visitor, host_box = clerks.visitor, fed.boxes[host]
        label = "ケース2" if situation == CASE2 else "ケース3"
        self.say(f"{label}: {TOWN_NAMES[town]} の庁舎が停止 → {TOWN_NAMES[host]} のボックスへ")
        open_row = self.row(town, 7 if situation == CASE2 else 29)
        opens = open_row.add(Check("訪問職員の資格情報で開く（アクティベーション下）"))
        isolation = (
            self.row(town, 27).add(Check("自町村以外は開けない")) if situation == CASE3 else None
        )
        sealed_row = self.row(town, 6)
        refused_here = sealed_row.add(Check(f"{host_box.box_id} で利用開始前は開かない"))
        # Before anything happens: the partner replica is there but sealed.
        with Counter(host_box.url, fed.ca_file) as before:
            before.login_check(refused_here, town, visitor.login_id, visitor.password, expect=403)
            before.login_check(opens, town, visitor.login_id, visitor.password, expect=403)
        outcome = CaseOutcome(town, situation, host, "自庁ボックス停止（SIGKILL）"
                              + ("" if situation == CASE2 else "、ハブ停止"))  # fmt: skip
        if situation == CASE3:
            self._hub_is_down(self.row(town, PRINTER_ROWS[CASE3]))
        self.writers[town].stop()
        failed_at = fed.kill_box(town)
        try:
            started = time.monotonic()
            now = time.time()
            activation = issue_activation(
                clerks.deputy_keys, host_town=host, host_box=host_box.box_id,
                clerks=[visitor.login_id], not_before=now - 120, expires_at=now + 4 * 3600,
            )  # fmt: skip
            self._human("activation_code", f"代表者 {clerks.deputy.login_id} が利用開始コードを発行"
                        f"（{host_box.box_id}、{visitor.login_id}）", town, situation,
                        time.monotonic() - started)  # fmt: skip
            with Counter(host_box.url, fed.ca_file) as supervisor:
                sup = host_clerks.supervisor
                supervisor.login_check(opens, host, sup.login_id, sup.password)
                self._human("password", f"受入町村の監督者 {sup.login_id} がパスワード入力", town,
                            situation)  # fmt: skip
                at = time.monotonic()
                accepted = supervisor.activation(activation.to_code())
                self._human("supervisor_approval", f"監督者 {sup.login_id} が利用開始コードを受付",
                            town, situation, time.monotonic() - at)  # fmt: skip
                opens.see("request", f"POST {host_box.url}/activation（コード {len(activation.to_code())} 字）"
                          f" → {accepted.status_code} {_status_text(accepted.text)}",
                          status=accepted.status_code)  # fmt: skip
                opens.ok(accepted.status_code == 200 and "受け付けました" in accepted.text,
                         "利用開始コードが受け付けられません")  # fmt: skip
            with Counter(host_box.url, fed.ca_file, AGENTS[situation]) as counter:
                login = counter.login_check(opens, town, visitor.login_id, visitor.password)
                self._human(
                    "password", f"訪問職員 {visitor.login_id} がパスワード入力", town, situation
                )
                if login is None or login.status_code != 303:
                    return
                health = counter.health()
                opens.see("request", f"GET /api/health → 開いている町村 {health.get('open')}",
                          open=health.get("open"))  # fmt: skip
                opens.ok(town in health.get("open", []), "町村が開いていません")
                no_js = self.row(town, NO_JS_ROWS[situation]) if situation in NO_JS_ROWS else None
                first = self._issue_all(counter, town, situation, no_js, host=host)
                if situation == CASE2:
                    self._partner_rows(town, counter)
                if isolation is not None:
                    self._isolation(isolation, town, host, third)
            if first is not None:
                outcome.recovery_s = round(first - failed_at, 3)
            self._data_loss(outcome, town, failed_at)
            if situation == CASE2:  # the town's laptop goes to the host (not timed above)
                fed.carry_laptop(town, host)
            outcome.hub_as_of = self.hub_towns.get(town, {}).get("as_of", "")
            outcome.shown_as_of = self._last_shown.get((town, situation), "")
            outcome.human_steps = self._steps(town, situation)
            self.outcomes.append(outcome)
        finally:
            self.say(f"  {TOWN_NAMES[town]} の自庁ボックスを再起動します")
            fed.start_box(town)
            self._start_edits(town)

    def _hub_is_down(self, row: RowResult) -> None:
        check = row.add(Check("ハブ停止中"))
        try:
            response = httpx.get(f"{self.fed.hub_url}/api/health", timeout=3)
            check.see("request", f"GET {self.fed.hub_url}/api/health → {response.status_code}")
            check.ok(False, "ハブが停止していません")
        except httpx.HTTPError as exc:
            check.see(
                "refusal", f"ハブ: 接続できません（{type(exc).__name__}）— クラウドセンター停止中"
            )
            check.ok(True)

    def _partner_rows(self, town: str, counter: Counter) -> None:
        """Rows 8 and 19 on the partner box: the opened replica serves the town's counter
        at the state the hub has (previous day's export)."""
        eight = self.row(town, 8).add(Check("開いた複製が窓口業務を提供"))
        issued = [c for c in self.row(town, issuance_row(CASE2, JUMINHYO).number).checks
                  if c.name != UNIQUE_NUMBER]  # fmt: skip
        served = [e for c in issued for e in c.evidence if e.kind == "document"]
        eight.evidence.extend(e for c in issued for e in c.evidence)  # a × cites what came back
        eight.ok(bool(served) and all(c.verdict == "○" for c in issued), "交付できませんでした")
        nineteen = self.row(town, 19).add(Check("ハブ到達可：複製は最新"))
        shown = self._last_shown.get((town, CASE2), "")
        expected = _as_of_label(self.hub_towns.get(town, {}).get("as_of", ""))
        nineteen.see("request", f"受入ボックスの「データの時点」{shown or '（なし）'}／ハブ {expected}",
                     shown=shown, hub=expected)  # fmt: skip
        nineteen.ok(bool(shown) and shown == expected, "受入ボックスの複製がハブより古い")
        logins = [e for c in self.row(town, 7).checks for e in c.evidence
                  if e.data.get("login_id") == self.fed.clerks[town].visitor.login_id
                  and e.data.get("status") == 303]  # fmt: skip
        nineteen.evidence.extend(logins)
        nineteen.ok(bool(logins), "いつものIDとパスワードでログインできません")

    def _isolation(self, check: Check, town: str, host: str, third: str) -> None:
        """Row 27: the visiting clerk opens only their own town."""
        fed = self.fed
        visitor = fed.clerks[town].visitor
        url = fed.boxes[host].url
        with Counter(url, fed.ca_file) as other:
            other.login_check(check, host, visitor.login_id, visitor.password, expect=403)
            other.login_check(check, third, visitor.login_id, visitor.password, expect=403)
            stranger = fed.clerks[third].other  # on the roster: their keys are on this box
            other.login_check(check, third, stranger.login_id, stranger.password, expect=403)
            colleague = fed.clerks[town].other  # same town, not named in the activation
            other.login_check(check, town, colleague.login_id, colleague.password, expect=403)

    # ------------------------------------------------------------------ documents

    def _issue_all(
        self,
        counter: Counter,
        town: str,
        situation: str,
        no_js: RowResult | None,
        host: str | None = None,
    ) -> float | None:
        """Every document of the case; returns when the first certificate was in hand."""
        fed = self.fed
        subject = fed.subjects[town]
        first: float | None = None
        for document in DOCUMENTS:
            row = issuance_row(situation, document) if situation != NORMAL else None
            asked = fed.requests[town].get(DOCUMENT_KEYS.get(document, ""))
            if document != LIST and asked is None:
                if row is not None:
                    self.row(town, row.number).add(
                        unverified(DOCUMENT_LABELS[document], NO_SUBJECT)
                    )
                continue
            check = Check(f"{DOCUMENT_LABELS[document]}の交付")
            try:
                if document == LIST:
                    issued: Issued | None = counter.issue_list()
                else:
                    assert asked is not None
                    issued = counter.issue(DOCUMENT_KEYS[document], asked.resident_id,
                                           asked.kana, asked.name, asked.extra)  # fmt: skip
            except FlowError as exc:
                for step in exc.steps:
                    check.see("request", f"{step[0]} → {step[1]}（{step[2]:.2f} 秒）")
                check.see("refusal", str(exc))
                check.ok(False, str(exc))
                issued = None
            except httpx.HTTPError as exc:
                check.see("request", f"窓口の操作中に接続が切れました: {exc}")
                check.ok(False, "接続が切れました")
                issued = None
            if issued is not None:
                first = first or time.time()
                for step in issued.steps:
                    check.see("request", f"{step[0]} → {step[1]}（{step[2]:.2f} 秒）",
                              request=step[0], status=step[1], seconds=step[2])  # fmt: skip
                pdfcheck.document_evidence(check, DOCUMENT_LABELS[document], issued.number,
                                           issued.pdf, issued.seconds)  # fmt: skip
                self.times[town].setdefault(situation, {})[document] = round(issued.seconds, 3)
                self._save_pdf(town, situation, document, issued)
            unique = self._unique_number(town, situation, document, issued, counter.url)
            if row is not None:
                result = self.row(town, row.number)
                result.add(check)
                if unique is not None:
                    result.add(unique)
                result.seconds = issued.seconds if issued else None
            if situation == NORMAL or document != JUMINHYO:
                continue
            if no_js is not None:
                self._no_js(no_js, counter, check)
            if situation in GLYPH_ROWS:
                self._glyphs(self.row(town, GLYPH_ROWS[situation]), counter, town, issued)
            if situation in PRINTER_ROWS and issued is not None and host is not None:
                self._print(self.row(town, PRINTER_ROWS[situation]), host, issued, counter)
        if situation != NORMAL:
            self._timing(town, situation)
            page = counter.search_page(subject.kana)
            self._last_shown[(town, situation)] = _shown_as_of(page.text)
        return first

    def _unique_number(
        self, town: str, situation: str, document: str, issued: Issued | None, url: str
    ) -> Check | None:
        """発行番号 are unique across every box and never reused (shared/issuance/
        numbering.py): a number handed over twice in one drill is a failure of the row."""
        if issued is None or not issued.number:
            return None
        number = issued.number.split(" ")[0]
        where = f"{SITUATION_LABELS[situation]}・{DOCUMENT_LABELS[document]}・{url}"
        seen = self.numbers.setdefault(town, {})
        check = Check(UNIQUE_NUMBER)
        if number in seen:
            check.see("document", f"発行番号 {number} は {seen[number]} で交付済みの番号と同じです",
                      number=number, first=seen[number], again=where)  # fmt: skip
            check.ok(False, "発行番号が重複しています")
        else:
            check.see("document", f"発行番号 {number} はこの訓練で初出（{len(seen)} 件と重複なし）",
                      number=number)  # fmt: skip
            check.ok(True)
            seen[number] = where
        return check

    def _save_pdf(self, town: str, situation: str, document: str, issued: Issued) -> None:
        folder = self.fed.root / "documents"
        folder.mkdir(exist_ok=True)
        name = f"{town}-{situation}-{document}-{issued.number}"
        path = folder / f"{name}.pdf"
        if path.exists():  # a number handed over twice: keep both copies
            path = folder / f"{name}-{len(list(folder.glob(name + '*')))}.pdf"
        path.write_bytes(issued.pdf)

    def _no_js(self, row: RowResult, counter: Counter, issued: Check) -> None:
        check = row.add(Check("JavaScriptなしの主要な流れ（古いブラウザ）"))
        check.see("note", f"JavaScriptを実行しないクライアント（User-Agent: {counter.http.headers['User-Agent']}）"
                  "でフォームを送信: ログイン→検索→世帯→請求→PDF", agent=counter.agent)  # fmt: skip
        check.evidence.extend(e for e in issued.evidence if e.kind in ("request", "refusal"))
        check.ok(issued.verdict == "○", "JavaScriptなしで交付まで進めません")

    def _glyphs(self, row: RowResult, counter: Counter, town: str, issued: Issued | None) -> None:
        subject = self.fed.subjects[town]
        if not subject.ivs:
            row.add(
                unverified("異体字", "この町村の合成住民に異体字セレクタを含む氏名がありません")
            )
            return
        paper = row.add(Check("紙: 埋め込まれた字形が IPAmj明朝の異体字と一致"))
        if issued is None:
            paper.see("refusal", "文書が交付されなかったため字形を確認できません")
            paper.ok(False, "文書なし")
        else:
            try:
                findings = pdfcheck.check_name_glyphs(issued.pdf, subject.name)
                for finding in findings:
                    paper.see("document", f"発行番号 {issued.number}: {finding.describe()}",
                              cluster=finding.cluster, expected=finding.expected,
                              embedded=finding.embedded, matches=finding.matches)  # fmt: skip
                    paper.ok(finding.ok, f"{finding.cluster} の字形が違います")
                paper.ok(bool(findings), "異体字がありません")
            except pdfcheck.GlyphCheckUnavailable as exc:
                paper.reason = str(exc)
                paper.passed = None
        self._screen_glyphs(row, counter, subject)

    def _screen_glyphs(self, row: RowResult, counter: Counter, subject: Any) -> None:
        screen = row.add(Check("画面: 異体字セレクタ付きの氏名を IPAmj明朝で表示"))
        page = counter.search_page(subject.kana)
        clusters = pdfcheck.variation_clusters(subject.name)
        cells = re.findall(r'<td class="names">(.*?)</td>', page.text, re.S)
        carried = any(all(c in cell for c in clusters) for cell in cells)
        styled = re.search(r"\.names\s*\{[^}]*(IPAmj|RenkeiNames)", page.text) is not None
        screen.see("request", f"GET /?q={subject.kana} → {page.status_code}: 氏名欄に異体字シーケンス"
                   f"{'あり' if carried else 'なし'}、氏名欄の書体 IPAmj明朝 {'指定あり' if styled else '指定なし'}",
                   status=page.status_code)  # fmt: skip
        screen.ok(page.status_code == 200 and carried, "画面の氏名から異体字セレクタが落ちています")
        screen.ok(styled, "氏名欄に IPAmj明朝が指定されていません")
        fonts = re.findall(r"url\(['\"]?([^'\")]+\.(?:woff2?|ttf|otf))", page.text)
        if not fonts:
            screen.see(
                "note",
                "ウェブフォントは未配信: 端末の IPAmj明朝で描画（BRIEF §4 のウェブフォントは未着）",
            )
            return
        for url in fonts[:4]:
            font = counter.http.get(url)
            verdicts = [pdfcheck.glyph_outline_in_font(font.content, c) for c in clusters]
            screen.see("document", f"GET {url} → {font.status_code}（{len(font.content):,} バイト）: "
                       f"異体字の字形 {verdicts}", status=font.status_code)  # fmt: skip
            if all(v is True for v in verdicts):
                return
        screen.ok(False, "配信されたウェブフォントに正しい異体字がありません")

    def _print(self, row: RowResult, host: str, issued: Issued, counter: Counter) -> None:
        from printing.cups import submit_ipp
        from printing.errors import PrintJobError

        check = row.add(Check("受入町村の端末・プリンタ"))
        box = self.fed.boxes[host]
        check.see("note", f"受入町村の端末から {box.url}（{box.box_id}）に接続", box=box.box_id)
        if box.printer is None:
            check.reason = self.fed.printers_error or "プリンタがありません"
            check.passed = None
            return
        try:
            job = submit_ipp(issued.pdf, box.printer.uri, title=f"drill {issued.number}", retries=3)
        except PrintJobError as exc:
            check.see("refusal", f"IPP 印刷 {box.printer.uri} → {exc}")
            check.ok(False, "印刷できません")
            return
        digest = pdfcheck.sha256(issued.pdf)
        deadline = time.monotonic() + 30
        printed = None
        while printed is None and time.monotonic() < deadline:
            for path in box.printer.spool.rglob("*"):
                if path.is_file() and pdfcheck.sha256(path.read_bytes()) == digest:
                    printed = path
            time.sleep(0.2)
        check.see("document", f"IPP Print-Job {box.printer.uri} → ジョブ {job.job_id}: "
                  f"{'プリンタが同じ文書を受け取りました' if printed else '30 秒以内に届きません'}"
                  f"（sha256 {digest[:16]}…）", job=job.job_id, sha256=digest)  # fmt: skip
        check.ok(printed is not None, "プリンタに届きません")

    def _timing(self, town: str, situation: str) -> None:
        row = timing_row(situation)
        result = self.row(town, row.number)
        for document in DOCUMENTS:
            label = DOCUMENT_LABELS[document]
            seed = SEED_SECONDS[town][situation][document]
            measured = self.times[town].get(situation, {}).get(document)
            if measured is None:
                result.add(unverified(f"{label}の応答時間", "交付されていないため計測できません"))
                continue
            budget = seed * self.budget_scale
            check = result.add(Check(f"{label}の応答時間"))
            check.see("measurement", f"{label}: 検索→交付 {measured:.2f} 秒（報告書 {seed:.0f} 秒"
                      + (f"、基準 {budget:.1f} 秒" if self.budget_scale != 1.0 else "") + "）",
                      seconds=measured, seed=seed, budget=budget)  # fmt: skip
            check.ok(measured <= budget, f"{label} が {budget:.1f} 秒を超えました")

    # ------------------------------------------------------------------ row 6

    def _sealed_replicas(self, town: str) -> None:
        from renkei.drill.scan import scan

        fed = self.fed
        check = self.row(town, 6).add(Check("連携先ボックスで封印されたまま"))
        export = fed.exports[town]
        subject = next(r for r in export.residents if r.id == fed.subjects[town].resident_id)
        hub_docs = len(self.hub_towns.get(town, {}).get("documents", []))
        clerk_names = {c.name for e in fed.exports.values() for c in e.clerks}
        for code, box in fed.boxes.items():
            if code == town:
                continue
            held = _documents(box.data, town)
            result = scan(box.data, export.residents, [subject], clerk_names)
            check.see("scan", f"{box.box_id}: {town} の封印文書 {held} 件（ハブ {hub_docs}）、"
                      f"ファイル {result.files} 個・{result.bytes:,} バイトに {result.needles} 語の個人情報"
                      f" → 平文 {len(result.hits)} 件" + (f" {result.hits[:3]}" if result.hits else ""),
                      box=box.box_id, held=held, files=result.files, hits=result.hits)  # fmt: skip
            check.ok(held > 0 and held >= hub_docs, f"{box.box_id} に複製がそろっていません")
            check.ok(not result.hits, f"{box.box_id} に平文の個人情報があります")

    # ------------------------------------------------------------------ bookkeeping

    def _human(
        self, kind: str, label: str, town: str, situation: str, seconds: float = 0.0
    ) -> None:
        self.human.append(HumanStep(kind, label, town, situation, round(seconds, 3)))

    def _steps(self, town: str, situation: str) -> int:
        return sum(1 for h in self.human if h.town == town and h.situation == situation)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [r.to_json() for r in self.rows.values()],
            "times": self.times,
            "cases": [asdict(o) for o in self.outcomes],
            "human_steps": [asdict(h) for h in self.human],
            "error": self.error,
        }


def _documents(data_dir: Any, town: str) -> int:
    """How many of the town's documents the box's sync log holds blobs of."""
    import json

    from shared.storage import SqliteStorage

    path = data_dir / "replica.db"
    if not path.exists():
        return 0
    storage = SqliteStorage(path)
    try:
        metas = storage.load_range((town, "logmeta"))
        return len({json.loads(meta)["d"] for _, meta in metas})
    finally:
        storage.close()


def _shown_as_of(page: str) -> str:
    found = re.search(r"データの時点：(.*?)現在の記録", page)
    return found.group(1).strip() if found else ""


def _as_of_label(as_of: str) -> str:
    """The as-of time as a box shows it (edge/town.py OpenTown.as_of_label)."""
    from shared.wareki import to_wareki

    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        return as_of or "不明"
    return f"{to_wareki(moment.date())} {moment.hour}時{moment.minute:02d}分"


def _status_text(html: str) -> str:
    found = re.search(r'role="status">([^<]*)<', html)
    return found.group(1)[:80] if found else alert_text(html)


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().strftime("%H:%M:%S.%f")[:-3]
