"""The supervisor's operations inside a town's worker: the ones that need the town's keys
or the logged-in clerk's own keys, so they run where those keys are (edge/worker.py).

Each request carries the session's capability; the worker checks the role in the clerk's
town-signed certificate itself, whatever the front decided (defence in depth). None of
them needs any other clerk's password. Requests and answers (one JSON object each):

    {"op": "clerk_add", "form": {login_id, name, roles: [...], on_roster, password}}
        -> {"ok": true, "record": credential record}         (supervisor)
    {"op": "clerk_reset", "form": {login_id, password}}  -> {"ok": true, "record": …}
    {"op": "clerk_roster", "form": {login_id, on_roster}} -> {"ok": true, "record": …}
    {"op": "clerk_revoke", "form": {login_id}}  -> {"ok": true, "revocation": statement}
    {"op": "appoint", "form": {name, title, start, acting_for_mayor}}
        -> {"ok": true, "record": appointment JSON}           (representative)
    {"op": "sign_revocation", "form": {target: hex id}}
        -> {"ok": true, "code": revocation code}              (representative on the deputy list)
    {"op": "audit"}       -> {"ok": true, "summary", "ok_chains", "chains", "problems", "recent"}
    {"op": "registers", "form": {day: YYYY-MM-DD}} -> {"ok": true, "entries", "daily"}
    {"op": "emergency_export", "form": {...manifest extras}}
        -> {"ok": true, "name", "sealed": hex, "manifest"}  (edge/emergency_export.py)
    {"op": "provisional_record", "form": {kind, subject, effective, new_address,
        reported_by, reason, host_town}} -> {"ok": true, "change"}
                                                  (supervisor; edge/provisional.py)
    {"op": "intake_handoff", "form": {number}} -> {"ok": true, "name", "sealed": hex}
                                                  (any clerk; edge/emergency_export.py)
    {"op": "provisional_list"}  -> {"ok": true, "changes": [...]}      (supervisor)
    {"op": "provisional_for", "form": {"residents": [ids]}} -> {"ok": true, "flags"}  (any clerk)

Errors come back as {"ok": false, "error": Japanese message}.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from edge import emergency_export
from edge.boxkey import box_signing_key
from edge.counter import ClerkSession, Counter, registers_storage
from edge.provisional import ProvisionalBook, ProvisionalError
from shared import crypto
from shared.activation import (
    Appointment,
    Appointments,
    TownTrust,
    issue_appointment,
    issue_revocation,
)
from shared.audit import (
    AUDIT,
    KIND_LABELS,
    AuditEntry,
    WriterDirectory,
    jst_text,
    verify_town,
)
from shared.blobs import BlobError, open_blob
from shared.clerk_records import certificate_of, new_credential, recertify, revocation
from shared.issuance.registers import IssuanceRegister, daily_report
from shared.model import Clerk, Official, Role, Town
from shared.storage import Storage

if TYPE_CHECKING:
    from edge.worker import TownWorker

LOGIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
GRANTABLE = frozenset({Role.CLERK, Role.SUPERVISOR, Role.ADMIN})
RECENT = 50

MSG_DENIED = "この操作を行う権限がありません。"

# How the audit view names the details entries carry (keys stay English in the log).
DETAIL_LABELS = {
    "login_id": "職員ID",
    "client": "端末",
    "reason": "理由",
    "visiting": "連携窓口",
    "action": "操作",
    "by": "実施者",
    "roles": "権限",
    "on_roster": "緊急時名簿",
    "record": "記録",
    "type": "種類",
    "resident": "宛名番号",
    "stricken_town": "被災町村",
    "host_town": "受入町村",
    "host_box": "受入ボックス",
    "clerks": "職員",
    "unresolved_clerks": "未確認の職員",
    "not_before": "開始",
    "expires_at": "期限",
    "signers": "署名者",
    "accepted_by": "受付者",
    "ratified": "追認",
    "signer": "署名者",
    "at": "日時",
    "date": "日付",
    "case": "ケース",
    "step": "手順",
    "done": "確認",
    "export": "書き出し",
    "files": "ファイル",
    "revoked": "取消",
    "not_revoked": "未取消",
    "setting": "設定",
    "disaster_mode": "災害モード",
    "fee_exemption": "災害減免",
    "copay_exemption": "一部負担金免除",
    "queue": "プリンタ",
    "dx_mm": "右へ(mm)",
    "dy_mm": "下へ(mm)",
    "terminal": "端末",
    "number": "発行番号",
    "clerk": "職員",
    "how": "方法",
    "document": "証明書",
    "by_town": "実施者の町村",
    "name": "氏名",
    "title": "職名",
    "acting_for_mayor": "職務代理",
    "start": "開始",
}


class AdminError(Exception):
    """A request the worker refuses (message for the clerk)."""


def _load_record(worker: TownWorker, login_id: str) -> dict[str, Any]:
    import json

    raw = worker.storage.load((worker.town, "credential", login_id))
    if raw is None:
        raise AdminError("その職員は登録されていません。")
    record: dict[str, Any] = json.loads(raw)
    return record


def _login(form: dict[str, Any]) -> str:
    login_id = str(form.get("login_id", "")).strip()
    if not LOGIN_ID.match(login_id):
        raise AdminError("ログインIDは英小文字・数字・「.」「-」「_」で2〜40文字にしてください。")
    return login_id


def _clerk_add(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    login_id = _login(form)
    if worker.storage.load((worker.town, "credential", login_id)) is not None:
        raise AdminError("そのログインIDはすでに使われています。")
    name = str(form.get("name", "")).strip()[:40]
    if not name:
        raise AdminError("氏名を入力してください。")
    try:
        roles = tuple(sorted({Role(r) for r in form.get("roles", [])}))
    except ValueError as exc:
        raise AdminError("権限の指定が正しくありません。") from exc
    if not roles or not set(roles) <= GRANTABLE:
        raise AdminError("権限は「職員」「監督者」「システム管理者」から選んでください。")
    new = Clerk(worker.town, login_id, name, "", roles, on_roster=bool(form.get("on_roster")))
    assert worker.keyring is not None
    record = new_credential(worker.keyring, new, str(form.get("password", "")))
    return {"ok": True, "record": record}


def _clerk_reset(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    login_id = _login(form)
    old = _load_record(worker, login_id)
    cert = certificate_of(old)
    same = Clerk(
        worker.town,
        login_id,
        str(old.get("name", login_id)),
        "",
        cert.roles,
        on_roster=cert.on_roster,
        deputy_rank=cert.deputy_rank,
    )
    assert worker.keyring is not None
    return {"ok": True, "record": new_credential(worker.keyring, same, str(form.get("password")))}


def _clerk_roster(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    record = _load_record(worker, _login(form))
    assert worker.keyring is not None
    return {
        "ok": True,
        "record": recertify(worker.keyring, record, on_roster=bool(form.get("on_roster"))),
    }


def _clerk_revoke(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    login_id = _login(form)
    if login_id == clerk.login_id:
        raise AdminError("自分自身の登録は取り消せません。別の監督者に依頼してください。")
    _load_record(worker, login_id)
    assert worker.keyring is not None
    statement = revocation(worker.keyring, login_id, by=clerk.login_id, at=_now())
    return {"ok": True, "revocation": statement}


def _appoint(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    name, title = str(form.get("name", "")).strip(), str(form.get("title", "")).strip()
    if not name or not title:
        raise AdminError("職務代理者の氏名と職名を入力してください。")
    try:
        start = float(form.get("start", ""))
    except (TypeError, ValueError) as exc:
        raise AdminError("開始日時を入力してください。") from exc
    try:
        record = issue_appointment(
            clerk.keys,
            name=name,
            title=title,
            start=start,
            acting_for_mayor=bool(form.get("acting_for_mayor", True)),
        )
    except (ValueError, OverflowError) as exc:
        raise AdminError("氏名・職名が長すぎるか、日時が正しくありません。") from exc
    return {"ok": True, "record": record.to_json()}


def _sign_revocation(
    worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]
) -> dict[str, Any]:
    if clerk.certificate.deputy_rank <= 0:
        raise AdminError("利用開始の取消は、代表者名簿に載っている代表者だけが署名できます。")
    try:
        target = bytes.fromhex(str(form.get("target", "")))
    except ValueError as exc:
        raise AdminError("取り消す利用開始の指定が正しくありません。") from exc
    if len(target) != 8:
        raise AdminError("取り消す利用開始の指定が正しくありません。")
    return {"ok": True, "code": issue_revocation(clerk.keys, target=target, at=_now()).to_code()}


def _writer_lookup(worker: TownWorker) -> WriterDirectory:
    certificates = worker.replica.certificates(worker.town)
    box_ids = {worker.box_id, f"box-{worker.town}"}
    key = box_signing_key(worker.data_dir).verify_key
    return WriterDirectory(boxes=dict.fromkeys(box_ids, key), clerks=certificates)


def _audit(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    assert worker.keyring is not None
    lookup = _writer_lookup(worker)
    report = verify_town(worker.storage, worker.keyring, lookup, {})
    recent: list[dict[str, Any]] = []
    for _key, blob in worker.storage.load_range((worker.town, AUDIT)):
        try:
            _, plaintext = open_blob(blob, worker.keyring, lookup)
            entry = AuditEntry.from_plaintext(plaintext)
        except (BlobError, ValueError):
            continue
        recent.append(
            {
                "time": entry.time,
                "when": jst_text(entry.time),
                "writer": entry.writer,
                "kind": KIND_LABELS.get(entry.kind, entry.kind),
                "details": _details(entry.details),
            }
        )
    recent.sort(key=lambda e: -e["time"])
    return {
        "ok": True,
        "summary": report.summary(),
        "verified": report.ok,
        "chains": [
            {
                "writer": c.writer,
                "entries": c.entries,
                "last": jst_text(c.last_time) if c.last_time else "",
            }
            for c in report.chains.values()
        ],
        "problems": [p.message() for p in report.problems],
        "recent": recent[:RECENT],
    }


def sealed_registers(worker: TownWorker) -> Storage:
    """The town's registers and intake on this box (sealed to the town, box-signed)."""
    assert worker.keyring is not None
    return registers_storage(
        worker.storage, worker.keyring, worker.box_id, box_signing_key(worker.data_dir)
    )


TIME_KEYS = {"expires_at", "not_before", "at", "start", "accepted_at"}
VALUE_LABELS = {
    "add": "追加",
    "reset": "パスワード再設定",
    "roster": "緊急時名簿の変更",
    "revoke": "取消",
    "unlock": "ロック解除",
    "activation": "利用開始",
    "break_glass": "緊急起動",
    "modes": "災害モード・減免",
    "calibration": "位置調整",
    "terminal": "端末のプリンタ",
    "remove": "削除",
}


def _details(details: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(label, value, known) for the audit view: Japanese labels where known (an unknown
    key is shown as the technical name it is), はい/いいえ for booleans."""

    def text(value: Any, key: str = "") -> str:
        if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
            return jst_text(float(value))
        if isinstance(value, str) and value in VALUE_LABELS:
            return VALUE_LABELS[value]
        if isinstance(value, bool):
            return "はい" if value else "いいえ"
        if isinstance(value, list):
            return "、".join(text(v) for v in value)
        return "" if value is None else str(value)

    return [(DETAIL_LABELS.get(k, k), text(v, k), k in DETAIL_LABELS) for k, v in details.items()]


def appointment_officials(appointments: list[Appointment]) -> list[Official]:
    """Signed 職務代理 appointments (edge/supervisor.py) as the town's officials: each from
    its start day (JST) to the day before the next one starts."""
    officials = []
    ordered = sorted(appointments, key=lambda a: a.start)
    for n, appointment in enumerate(ordered):
        start = datetime.fromtimestamp(appointment.start, emergency_export.JST).date()
        end = None
        if n + 1 < len(ordered):
            nxt = datetime.fromtimestamp(ordered[n + 1].start, emergency_export.JST).date()
            end = nxt - timedelta(days=1)
            if end < start:  # replaced the same day: the later one signs that day
                continue
        officials.append(
            Official(appointment.name, appointment.title, start, end, appointment.acting_for_mayor)
        )
    return officials


# The town as the core system exported it, per counter (appointments are laid on top of
# it afresh at every issue, never on an earlier result).
_EXPORTED_TOWN: weakref.WeakKeyDictionary[Counter, Town] = weakref.WeakKeyDictionary()


def apply_appointments(worker: TownWorker, counter: Counter) -> None:
    """The certificates' 認証者 follows the appointments registered on this box, on top
    of the officials the core system exported (re-verified on every read)."""
    exported = _EXPORTED_TOWN.setdefault(counter, counter.town)
    public = worker.replica.town_public(worker.town)
    if public is None:
        return
    certificates = worker.replica.certificates(worker.town)
    book = Appointments(
        worker.storage, town=worker.town, trust=lambda _town: TownTrust.of(public, certificates)
    )
    appointed = appointment_officials(book.all())
    counter.town = replace(exported, officials=(*exported.officials, *appointed))


def register(worker: TownWorker) -> IssuanceRegister:
    return IssuanceRegister(sealed_registers(worker), worker.town)


def _registers(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    try:
        day = date.fromisoformat(str(form.get("day", "")))
    except ValueError:
        day = datetime.now(emergency_export.JST).date()
    valid = register(worker).valid_entries()
    entries = [e for e in valid if e.day == day]
    return {
        "ok": True,
        "day": day.isoformat(),
        "entries": [
            {
                "number": e.number,
                "time": e.issued_at.astimezone(emergency_export.JST).strftime("%H:%M"),
                "document": e.document.value,
                "clerk": e.clerk_id,
                "terminal": e.terminal,
                "fee": e.fee_payable,
                "reduction": e.reduction.value,
                "visiting": e.visiting,
            }
            for e in entries
        ],
        "daily": [
            {
                "town": line.town_code,
                "box": line.box_id,
                "terminal": line.terminal,
                "host": line.host_town_code,
                "copies": line.copies,
                "gross": line.gross,
                "waived": line.waived,
                "collected": line.collected,
            }
            for line in daily_report(valid, day)
        ],
    }


def _export(worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]) -> dict[str, Any]:
    assert worker.keyring is not None
    return {"ok": True, **emergency_export.build(worker, clerk, sealed_registers(worker), form)}


def _intake_handoff(
    worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]
) -> dict[str, Any]:
    number = str(form.get("number", ""))[:64]
    try:
        handoff = emergency_export.intake_handoff(worker, sealed_registers(worker), number)
    except ValueError as exc:
        raise AdminError("その受付番号の申請はありません。") from exc
    return {"ok": True, **handoff}


def provisional_book(worker: TownWorker) -> ProvisionalBook:
    return ProvisionalBook(sealed_registers(worker), worker.town, worker.box_id)


def _provisional_record(
    worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]
) -> dict[str, Any]:
    subject_id = str(form.get("subject", ""))[:64]
    resident = worker._counter().data.residents.get(subject_id)
    try:
        change = provisional_book(worker).record(
            kind=str(form.get("kind", "")),
            subject_id=subject_id if resident is not None else "",
            subject_name=resident.name if resident is not None else "",
            effective=str(form.get("effective", ""))[:32],
            new_address=str(form.get("new_address", "")),
            reported_by=str(form.get("reported_by", "")),
            reason=str(form.get("reason", "")),
            supervisor=clerk.login_id,
            host_town=str(form.get("host_town", ""))[:8],
            at=datetime.now(UTC),
        )
    except ProvisionalError as exc:
        raise AdminError(str(exc)) from exc
    return {"ok": True, "change": change.to_json()}


def _provisional_list(
    worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]
) -> dict[str, Any]:
    return {"ok": True, "changes": [c.to_json() for c in provisional_book(worker).changes()]}


def _provisional_for(
    worker: TownWorker, clerk: ClerkSession, form: dict[str, Any]
) -> dict[str, Any]:
    wanted = form.get("residents")
    ids = {str(r)[:64] for r in wanted[:64]} if isinstance(wanted, list) else set()
    return {"ok": True, "flags": provisional_book(worker).for_residents(ids)}


def _now() -> float:
    return datetime.now(UTC).timestamp()


Operation = Callable[["TownWorker", ClerkSession, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, tuple[frozenset[Role], Operation]] = {
    "clerk_add": (frozenset({Role.SUPERVISOR}), _clerk_add),
    "clerk_reset": (frozenset({Role.SUPERVISOR}), _clerk_reset),
    "clerk_roster": (frozenset({Role.SUPERVISOR}), _clerk_roster),
    "clerk_revoke": (frozenset({Role.SUPERVISOR}), _clerk_revoke),
    "appoint": (frozenset({Role.REPRESENTATIVE}), _appoint),
    "sign_revocation": (frozenset({Role.REPRESENTATIVE}), _sign_revocation),
    "audit": (frozenset({Role.SUPERVISOR}), _audit),
    "registers": (frozenset({Role.SUPERVISOR}), _registers),
    "emergency_export": (frozenset({Role.SUPERVISOR, Role.REPRESENTATIVE}), _export),
    "provisional_record": (frozenset({Role.SUPERVISOR}), _provisional_record),
    "provisional_list": (frozenset({Role.SUPERVISOR}), _provisional_list),
    "provisional_for": (frozenset(Role), _provisional_for),
    "intake_handoff": (frozenset(Role), _intake_handoff),
}


def handle(worker: TownWorker, op: str, request: dict[str, Any]) -> dict[str, Any]:
    clerk = worker.capabilities.get(str(request.get("capability", "")))
    if clerk is None or worker.keyring is None:
        return {"ok": False, "error": "denied"}
    roles, operation = OPERATIONS[op]
    if roles.isdisjoint(clerk.certificate.roles):
        return {"ok": False, "error": MSG_DENIED}
    form = request.get("form")
    try:
        return operation(worker, clerk, form if isinstance(form, dict) else {})
    except AdminError as exc:
        return {"ok": False, "error": str(exc)}
    except crypto.WeakPassword as exc:
        return {"ok": False, "error": str(exc)}
