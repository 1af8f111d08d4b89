"""The hub operator's screens (Japanese; operator login, cloud/operators.py).

    GET|POST /operator/login, POST /operator/logout
    GET  /operator             replica health: each town's replica at the hub (newest
                               import, documents) and every enrolled box (last sync, status,
                               certificate expiry)
    GET  /operator/intake      the intake queue: emergency exports the boxes sent
                               (edge/procedure.py, edge/emergency_export.py), per town; with
                               the custody passphrase available to the hub process and the
                               writing box enrolled, their 申請受付 are counted and listed
                               (numbers, dates, kinds and states — no names)
    GET  /operator/conflicts   concurrent edits for review (cloud.replica review items;
                               POST /operator/conflicts/{town}/{item} marks one checked)
    (was: not yet detected: the page
                               says so)
    GET  /operator/reconcile   reconciliation reports saved from `renkei reconcile --json`
                               into DATA/reconcile/ (?file=NAME shows one)
    POST /api/exports/{town}/{name}   a box hands over a sealed emergency export

Exports are stored as the box sealed them: (town, "export-in", name) and their arrival
under (town, "export-meta", name) {"received_at", "box", "size"}.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from nacl.signing import VerifyKey
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from cloud.intake_queue import anchor, place_applications
from cloud.operators import LOGIN_COOKIE, SESSION_COOKIE, Operators, OperatorSession, same_token
from cloud.store import TownStore, known_towns
from shared.blobs import BlobError, open_blob, read_header
from shared.issuance.numbering import box_code_for
from shared.storage import Storage

log = logging.getLogger(__name__)

EXPORT_PREFIX = "export\x1femergency\x1f"
SILENT_AFTER_S = 2 * 3600.0
MAX_EXPORT = 64 * 1024 * 1024
MSG_CSRF = "画面の有効期限が切れました。再読み込みしてから、もう一度操作してください。"


def jst(seconds: float | None) -> str:
    if not seconds:
        return "―"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds + 9 * 3600))


def store_export(storage: Storage, town: str, name: str, blob: bytes) -> str:
    """Keep a box's sealed emergency export; returns "" or why it was refused."""
    try:
        header = read_header(blob)
    except BlobError as exc:
        return f"not a sealed export: {exc}"
    if header.town != town or header.document != EXPORT_PREFIX + name:
        return "the export names another town or file"
    held = storage.load((town, "export-in", name))
    if held is not None:  # a box sends again after a lost answer; nobody replaces a file
        return "" if held == blob else "another file of that name is held"
    meta = {
        "received_at": time.time(),
        "box": header.writer_id.removeprefix("export:"),
        "size": len(blob),
    }
    storage.save_many(
        [
            ((town, "export-in", name), blob),
            ((town, "export-meta", name), json.dumps(meta).encode()),
        ]
    )
    return ""


def open_intake(blob: bytes, keyring: Any, box_key: VerifyKey) -> list[dict[str, Any]]:
    """The intake applications of a sealed export (signature by the box, files checked
    against the manifest). Raises BlobError or ValueError."""
    return open_export_intake(blob, keyring, box_key)[1]


def open_export_intake(
    blob: bytes, keyring: Any, box_key: VerifyKey
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, intake applications) of a sealed export, checked as `open_intake`."""
    header = read_header(blob)
    _, data = open_blob(
        blob,
        keyring,
        lambda w: box_key if w == header.writer_id else None,
        max_plaintext=MAX_EXPORT,
    )
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    intake = archive.read("intake.json")
    if hashlib.sha256(intake).hexdigest() != manifest["files"]["intake.json"]["sha256"]:
        raise ValueError("intake.json does not match the manifest")
    rows: list[dict[str, Any]] = json.loads(intake)
    if not isinstance(manifest, dict) or not isinstance(rows, list):
        raise ValueError("the manifest or intake.json is not what an export holds")
    if not all(isinstance(r, dict) and isinstance(r.get("number"), str) for r in rows):
        raise ValueError("an application in intake.json has no 受付番号")
    return manifest, rows


class HubScreens:
    def __init__(self, data_dir: Path, templates: Environment) -> None:
        self.data_dir = data_dir
        self.templates = templates
        self.operators = Operators(data_dir)

    # ------------------------------------------------------------------ plumbing

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(jst=jst, **context)
        return HTMLResponse(html, status_code=status_code)

    def session(self, request: Request) -> OperatorSession | None:
        return self.operators.get(request.cookies.get(SESSION_COOKIE))

    def operator_login(self, request: Request) -> str | None:
        session = self.session(request)
        return None if session is None else session.login

    def guarded(
        self, endpoint: Callable[[Request, OperatorSession], Any]
    ) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return RedirectResponse("/operator/login", status_code=303)
            if request.method == "POST":
                form = await request.form()
                if not same_token(session.csrf, form.get("csrf_token")):
                    return self.render(
                        "operator/login.html", status_code=403, error=MSG_CSRF, token=""
                    )
            response: Response = await endpoint(request, session)
            return response

        return run

    def _cookie(self, request: Request, name: str, value: str, max_age: str = "") -> str:
        secure = "; Secure" if request.url.scheme == "https" else ""
        return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict{max_age}{secure}"

    # ------------------------------------------------------------------ login

    async def login_page(
        self, request: Request, error: str = "", status_code: int = 200
    ) -> Response:
        import secrets

        token = secrets.token_urlsafe(32)
        response = self.render(
            "operator/login.html",
            status_code=status_code,
            error=error,
            token=token,
            configured=self.operators.configured(),
        )
        response.headers.append(
            "set-cookie", self._cookie(request, LOGIN_COOKIE, token, "; Max-Age=3600")
        )
        return response

    async def login_submit(self, request: Request) -> Response:
        form = await request.form()
        if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf_token")):
            return await self.login_page(request, MSG_CSRF, 403)
        try:
            session_id, _ = self.operators.log_in(
                str(form.get("login", ""))[:64], str(form.get("password", ""))[:200]
            )
        except Exception as exc:  # OperatorError: the message is for the operator
            return await self.login_page(request, str(exc), 401)
        response = RedirectResponse("/operator", status_code=303)
        response.headers.append("set-cookie", self._cookie(request, SESSION_COOKIE, session_id))
        return response

    async def logout(self, request: Request, session: OperatorSession) -> Response:
        self.operators.log_out(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/operator/login", status_code=303)
        response.headers.append(
            "set-cookie", self._cookie(request, SESSION_COOKIE, "", "; Max-Age=0")
        )
        return response

    # ------------------------------------------------------------------ screens

    async def dashboard(self, request: Request, session: OperatorSession) -> Response:
        storage = request.app.state.storage
        towns = []
        for code in known_towns(storage):
            store = TownStore(storage, code)
            towns.append(
                {
                    "code": code,
                    "name": (store.town_settings() or {}).get("name", code),
                    "as_of": store.as_of(),
                    "documents": len(store.document_names()),
                }
            )
        now = time.time()
        boxes = []
        enrolment = getattr(request.app.state, "enrolment", None)
        for box in enrolment.registry.boxes() if enrolment is not None else []:
            if box.revoked_at is not None:
                state = "登録取消"
            elif box.last_seen is None:
                state = "未同期"
            elif now - box.last_seen > SILENT_AFTER_S:
                state = "応答なし"
            else:
                state = "正常"
            expires = ""
            with contextlib.suppress(ValueError, KeyError):
                expires = box.cert().expires_at.astimezone().strftime("%Y-%m-%d")
            boxes.append(
                {
                    "box": box.box,
                    "town": box.town,
                    "last_seen": box.last_seen,
                    "state": state,
                    "expires": expires,
                }
            )
        return self.render("operator/dashboard.html", session=session, towns=towns, boxes=boxes)

    def _box_key(self, request: Request, box_id: str) -> VerifyKey | None:
        enrolment = getattr(request.app.state, "enrolment", None)
        if enrolment is None:
            return None
        # An export names its box by the box's 発行番号 code, derived from the box key
        # (shared.issuance.numbering.box_code_for); older exports used the enrolled name.
        row = enrolment.registry.box(box_id) or next(
            (
                box
                for box in enrolment.registry.boxes()
                if box_code_for(bytes.fromhex(box.box_key)) == box_id
            ),
            None,
        )
        if row is None or row.revoked_at is not None:
            return None
        return VerifyKey(bytes.fromhex(row.box_key))

    def _custody(self) -> Any:
        from cloud.custody import Custody, CustodyError
        from cloud.enrolment import passphrase_from_environment

        passphrase = passphrase_from_environment()
        if passphrase is None:
            return None
        try:
            return Custody.load(self.data_dir, passphrase)
        except CustodyError:
            return None

    async def intake(self, request: Request, session: OperatorSession) -> Response:
        storage = request.app.state.storage
        custody = None
        exports = []
        for code in known_towns(storage):
            for key, raw in storage.load_range((code, "export-meta")):
                meta = json.loads(raw)
                entry: dict[str, Any] = {
                    "town": code,
                    "name": key[2],
                    **meta,
                    "applications": None,
                    "handoff": False,
                    "box_key": "",
                    "why": "",
                    "anchor": anchor(code, key[2]),
                }
                box_key = self._box_key(request, str(meta["box"]))
                if box_key is None:
                    entry["why"] = "書き出したボックスが登録されていないため、開けません。"
                else:
                    custody = custody or self._custody()
                    blob = storage.load((code, "export-in", key[2]))
                    if custody is None or code not in custody.rings or blob is None:
                        entry["why"] = "鍵の保管ファイルが開かれていないため、開けません。"
                    else:
                        try:
                            manifest, rows = open_export_intake(blob, custody.rings[code], box_key)
                            entry["applications"] = rows
                            entry["handoff"] = manifest.get("handoff") == "intake"
                            entry["box_key"] = bytes(box_key).hex()
                        except (BlobError, ValueError, KeyError) as exc:
                            log.warning("export %s/%s does not open: %s", code, key[2], exc)
                            entry["why"] = "ファイルを検証できません（改ざん・別の町・鍵違い）。"
                exports.append(entry)
        place_applications(exports)
        exports.sort(key=lambda e: -float(e["received_at"]))
        return self.render("operator/intake.html", session=session, exports=exports)

    async def conflicts(self, request: Request, session: OperatorSession) -> Response:
        """Concurrent edits and imports that overwrote a box's edit (cloud.replica review
        items), values shown only here, to a logged-in operator of an unsealed hub."""
        hub = getattr(request.app.state, "hub", None)
        status = request.query_params.get("status", "open")
        status = status if status in ("open", "resolved") else "open"
        items = [] if hub is None else await run_in_threadpool(hub.review_items, None, status)
        return self.render(
            "operator/conflicts.html", session=session, items=items, status=status,
            relay_only=hub is None or getattr(hub, "custody", None) is None,
        )  # fmt: skip

    async def resolve_conflict(self, request: Request, session: OperatorSession) -> Response:
        hub = getattr(request.app.state, "hub", None)
        form = await request.form()
        note = str(form.get("note", ""))[:500]
        if hub is not None:
            with contextlib.suppress(KeyError):  # already gone: the list shows what is left
                await run_in_threadpool(
                    hub.resolve,
                    request.path_params["town"],
                    request.path_params["item"],
                    session.login,
                    note,
                )
        return RedirectResponse("/operator/conflicts", status_code=303)

    async def reconcile(self, request: Request, session: OperatorSession) -> Response:
        from shared.issuance.codec import decode
        from shared.issuance.errors import IssuanceError
        from shared.issuance.reconcile import ReconciliationReport, render

        folder = self.data_dir / "reconcile"
        files = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        chosen = request.query_params.get("file", "")
        text, error = "", ""
        if chosen:
            if chosen not in files:
                return self.render(
                    "operator/reconcile.html",
                    status_code=404,
                    session=session,
                    files=files,
                    chosen="",
                    text="",
                    error="指定された照合報告はありません。",
                )
            try:
                data = json.loads((folder / chosen).read_text(encoding="utf-8"))
                data.pop("clean", None)
                text = render(decode(ReconciliationReport, data))
            except (ValueError, IssuanceError, KeyError, TypeError) as exc:
                log.warning("reconciliation report %s unreadable: %s", chosen, exc)
                error = "この照合報告は読めません。照合をやり直し、JSON形式で保存し直してください。"
        return self.render(
            "operator/reconcile.html",
            session=session,
            files=files,
            chosen=chosen,
            text=text,
            error=error,
        )

    async def receive_export(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_EXPORT:
            return JSONResponse({"error": "too large"}, status_code=413)
        refused = store_export(
            request.app.state.storage,
            request.path_params["town"],
            request.path_params["name"],
            body,
        )
        if refused:
            return JSONResponse({"error": refused}, status_code=400)
        return JSONResponse({"ok": True})

    def routes(self) -> list[Route]:
        return [
            Route("/operator/login", self.login_page, methods=["GET"]),
            Route("/operator/login", self.login_submit, methods=["POST"]),
            Route("/operator/logout", self.guarded(self.logout), methods=["POST"]),
            Route("/operator", self.guarded(self.dashboard)),
            Route("/operator/intake", self.guarded(self.intake)),
            Route("/operator/conflicts", self.guarded(self.conflicts)),
            Route(
                "/operator/conflicts/{town:str}/{item:str}",
                self.guarded(self.resolve_conflict),
                methods=["POST"],
            ),
            Route("/operator/reconcile", self.guarded(self.reconcile)),
            Route("/api/exports/{town:str}/{name:str}", self.receive_export, methods=["POST"]),
        ]
