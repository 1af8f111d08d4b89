"""The supervisor's screens on the box (Japanese; roles checked server-side on every
request by `edge.auth.require`, CSRF on every form; the town's worker re-checks the role
in the clerk's town-signed certificate for anything that needs keys).

    GET       /supervisor             menu
    GET|POST  /supervisor/clerks      clerks: add, password reset, revoke, emergency roster,
                                      lift a login lockout                       (supervisor)
    GET|POST  /supervisor/deputy      職務代理: who signs now; appoint (signed in the worker
                                      with the representative's own key) or register a
                                      representative's code                 (representative)
    GET|POST  /supervisor/modes       disaster mode and the disaster fee exemption
                                      (switched by a representative)
    GET       /supervisor/audit       the town's audit chains verified, latest entries
    GET       /supervisor/registers   交付 register and 日計表 of a day (?day=YYYY-MM-DD)
    GET|POST  /supervisor/printers    CUPS queues, test page, calibration   (supervisor, admin)
    GET       /supervisor/printers/sheet   the calibration sheet as a PDF

Each screen is about the session's own town only: every read goes through that town's
worker or the town's own storage keys; no URL names a town.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edge import auth, counter_config
from edge.clerks import ClerkOutbox
from edge.counter_routes import download
from edge.emergency_export import JST
from edge.workers import WorkerGone
from printing.cups import Calibration, CalibrationStore, calibration_sheet, submit_pdf
from printing.errors import PrintJobError
from shared.activation import ActivationError, Appointments, jst
from shared.audit import AuditKind
from shared.clerk_records import certificate_of
from shared.issuance import CopayExemption
from shared.model import Role

if TYPE_CHECKING:
    from edge.app import Box

log = logging.getLogger(__name__)

Render = Callable[..., Response]

ROLE_LABELS = {
    Role.CLERK: "職員",
    Role.SUPERVISOR: "監督者",
    Role.REPRESENTATIVE: "代表者",
    Role.ADMIN: "システム管理者",
}
GRANTABLE = (Role.CLERK, Role.SUPERVISOR, Role.ADMIN)
MANAGERS = {Role.SUPERVISOR, Role.REPRESENTATIVE, Role.ADMIN}
MSG_SEALED = "町のデータが閉じられました。もう一度ログインしてください。"


def _principal(request: Request) -> auth.Principal:
    principal = auth.current_principal(request)
    assert principal is not None  # every route here is wrapped in auth.require
    return principal


def sealed_again(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    auth.log_out(request, response)
    return response


def _form_text(form: Any, name: str, limit: int = 200) -> str:
    return str(form.get(name, ""))[:limit].strip()


def list_queues() -> list[dict[str, str]]:
    """The box's CUPS queues (`lpstat -p`): name and state, in Japanese."""
    if shutil.which("lpstat") is None:
        return []
    try:
        out = subprocess.run(
            ["lpstat", "-p"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={"LANG": "C"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    queues = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "printer":
            state = "待機中" if "idle" in line else "印刷中" if "printing" in line else "停止中"
            queues.append({"name": parts[1], "state": state})
    return queues


class SupervisorScreens:
    def __init__(self, box: Box, render: Render) -> None:
        self.box = box
        self.render = render
        self.outbox = ClerkOutbox(box.storage)
        self.calibrations = CalibrationStore(box.config.data_dir / "calibration.json")

    # ------------------------------------------------------------------ helpers

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        principal = _principal(request)
        return self.render(
            name,
            status_code=status_code,
            principal=principal,
            town_name=self.box.replica.town_name(principal.town_code),
            host_name=self.box.replica.town_name(self.box.config.town_code),
            role_labels=ROLE_LABELS,
            **context,
        )

    async def ask(
        self, request: Request, op: str, form: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self.box.ask(_principal(request), {"op": op, "form": form or {}})

    def clerks(self, town: str) -> list[dict[str, Any]]:
        pending = self.outbox.pending(town)
        rows = []
        for key, raw in self.box.storage.load_range((town, "credential")):
            record = json.loads(raw)
            cert = certificate_of(record)
            rows.append(
                {
                    "login_id": key[2],
                    "name": record.get("name", key[2]),
                    "roles": [ROLE_LABELS.get(r, r) for r in cert.roles],
                    "on_roster": cert.on_roster,
                    "deputy_rank": cert.deputy_rank,
                    "issued": jst(cert.issued_at.timestamp()),
                    "pending": key[2] in pending,
                }
            )
        revoked = [login for login, what in pending.items() if what == "revocation"]
        return sorted(rows, key=lambda r: r["login_id"]) + [
            {
                "login_id": login,
                "name": "",
                "roles": [],
                "on_roster": False,
                "deputy_rank": 0,
                "issued": "",
                "pending": True,
                "revoked": True,
            }
            for login in revoked
        ]

    # ------------------------------------------------------------------ menu

    async def menu(self, request: Request) -> Response:
        return self.page(request, "supervisor/menu.html")

    # ------------------------------------------------------------------ 暫定異動

    async def provisional_page(
        self,
        request: Request,
        message: str = "",
        error: str = "",
        status_code: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:
        try:
            answer = await self.ask(request, "provisional_list")
        except WorkerGone:
            return sealed_again(request)
        subject = request.query_params.get("subject", "")[:64]
        return self.page(
            request,
            "supervisor/provisional.html",
            status_code=status_code,
            changes=answer.get("changes", []),
            values=values or {"subject": subject, "kind": "move"},
            message=message,
            error=error or ("" if answer.get("ok") else str(answer.get("error", ""))),
        )

    async def provisional_get(self, request: Request) -> Response:
        return await self.provisional_page(request)

    async def provisional_post(self, request: Request) -> Response:
        """A supervisor's provisional emergency change (edge/provisional.py): recorded
        sealed in the worker, audited here (number, kind and 宛名番号 only)."""
        principal = _principal(request)
        form = await request.form()
        fields = {
            name: _form_text(form, name, 400)
            for name in ("subject", "kind", "effective", "new_address", "reported_by", "reason")
        }
        if form.get("confirm") != "1":
            return await self.provisional_page(
                request,
                error="基幹系で未処理の暫定異動であることを確認するチェックを入れてください。",
                status_code=400,
                values=fields,
            )
        try:
            answer = await self.ask(
                request, "provisional_record", {**fields, "host_town": self.box.config.town_code}
            )
        except WorkerGone:
            return sealed_again(request)
        if not answer.get("ok"):
            return await self.provisional_page(
                request, error=str(answer.get("error", "")), status_code=400, values=fields
            )
        change = answer["change"]
        self.box.record(
            principal.town_code,
            AuditKind.PROVISIONAL_CHANGE,
            number=change["number"],
            type=change["kind"],
            resident=change["subject_id"],
            date=change["effective"],
            by=principal.login_id,
            host_town=self.box.config.town_code,
        )
        return await self.provisional_page(
            request,
            message=f"暫定異動 {change['number']} を記録しました。この方の証明書は、"
            "基幹系システムで処理が済むまで交付できません。",
        )

    # ------------------------------------------------------------------ clerks

    def clerks_page(
        self, request: Request, message: str = "", error: str = "", status_code: int = 200
    ) -> Response:
        town = _principal(request).town_code
        return self.page(
            request,
            "supervisor/clerks.html",
            status_code=status_code,
            clerks=self.clerks(town),
            grantable=GRANTABLE,
            message=message,
            error=error,
        )

    async def clerks_get(self, request: Request) -> Response:
        return self.clerks_page(request)

    async def clerks_post(self, request: Request) -> Response:
        principal = _principal(request)
        form = await request.form()
        action = _form_text(form, "action", 20)
        login_id = _form_text(form, "login_id", 64)
        fields: dict[str, Any] = {"login_id": login_id}
        if action == "unlock":
            if self.box.storage.load((principal.town_code, "credential", login_id)) is None:
                return self.clerks_page(
                    request, error="その職員は登録されていません。", status_code=400
                )
            self.box.throttle.unlock(principal.town_code, login_id)
            self.box.record(
                principal.town_code,
                AuditKind.CLERK_CHANGED,
                action="unlock",
                login_id=login_id,
                by=principal.login_id,
            )
            return self.clerks_page(request, message=f"{login_id} のロックを解除しました。")
        if action == "add":
            fields |= {
                "name": _form_text(form, "name", 40),
                "roles": [str(r) for r in form.getlist("roles")][:4],
                "on_roster": form.get("on_roster") == "1",
                "password": str(form.get("password", ""))[:200],
            }
        elif action == "reset":
            fields["password"] = str(form.get("password", ""))[:200]
        elif action == "roster":
            fields["on_roster"] = form.get("on_roster") == "1"
        elif action != "revoke":
            return self.clerks_page(request, error="操作を選んでください。", status_code=400)
        try:
            answer = await self.ask(request, f"clerk_{action}", fields)
        except WorkerGone:
            return sealed_again(request)
        if not answer.get("ok"):
            return self.clerks_page(request, error=str(answer.get("error", "")), status_code=400)
        if "revocation" in answer:
            self.outbox.store_revocation(principal.town_code, answer["revocation"])
        else:
            self.outbox.store_record(principal.town_code, answer["record"])
        if action in ("reset", "revoke"):
            self.box.sessions.revoke_login(principal.town_code, login_id)
        details: dict[str, Any] = {"action": action, "login_id": login_id, "by": principal.login_id}
        if action == "add":
            details |= {"roles": fields["roles"], "on_roster": fields["on_roster"]}
        if action == "roster":
            details["on_roster"] = fields["on_roster"]
        self.box.record(principal.town_code, AuditKind.CLERK_CHANGED, **details)
        done = {
            "add": "登録しました",
            "reset": "パスワードを再設定しました",
            "roster": "緊急時名簿を変更しました",
            "revoke": "登録を取り消しました",
        }[action]
        return self.clerks_page(
            request,
            message=f"{login_id} の{done}。"
            "ハブに接続したときに、ほかの連携ボックスにも反映されます。",
        )

    # ------------------------------------------------------------------ 職務代理

    def appointments(self, town: str) -> Appointments:
        return Appointments(
            self.box.storage, town=town, trust=self.box._trust, audit=self.box.audit
        )

    def deputy_page(
        self, request: Request, message: str = "", error: str = "", status_code: int = 200
    ) -> Response:
        principal = _principal(request)
        appointments = self.appointments(principal.town_code)
        now = self.box.clock.now()
        return self.page(
            request,
            "supervisor/deputy.html",
            status_code=status_code,
            appointments=appointments.all(),
            current=appointments.acting_mayor_at(now),
            jst=jst,
            may_sign=Role.REPRESENTATIVE in principal.roles,
            message=message,
            error=error,
        )

    async def deputy_get(self, request: Request) -> Response:
        return self.deputy_page(request)

    @staticmethod
    def _start(text: str) -> float | None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=JST)).timestamp()

    async def deputy_post(self, request: Request) -> Response:
        principal = _principal(request)
        form = await request.form()
        appointments = self.appointments(principal.town_code)
        if form.get("action") == "code":
            record: Any = _form_text(form, "code", 600)
        else:
            start = self._start(_form_text(form, "start", 40))
            if start is None:
                return self.deputy_page(
                    request, error="開始日時を入力してください。", status_code=400
                )
            fields = {
                "name": _form_text(form, "name", 60),
                "title": _form_text(form, "title", 60),
                "start": start,
                "acting_for_mayor": form.get("acting_for_mayor") != "0",
            }
            try:
                answer = await self.ask(request, "appoint", fields)
            except WorkerGone:
                return sealed_again(request)
            if not answer.get("ok"):
                return self.deputy_page(request, error=str(answer.get("error")), status_code=400)
            record = answer["record"]
        try:
            appointment = appointments.register(record)
        except (ActivationError, ValueError) as exc:
            return self.deputy_page(request, error=str(exc), status_code=400)
        return self.deputy_page(
            request,
            message=f"{appointment.title} {appointment.name} を"
            f"{jst(appointment.start)}からの職務代理者として登録しました。",
        )

    # ------------------------------------------------------------------ modes

    def modes_page(
        self, request: Request, message: str = "", error: str = "", status_code: int = 200
    ) -> Response:
        principal = _principal(request)
        try:
            modes = counter_config.load(self.box.config.data_dir).modes(principal.town_code)
        except counter_config.ConfigError as exc:
            return self.page(
                request,
                "supervisor/modes.html",
                status_code=500,
                error=str(exc),
                modes=counter_config.TownModes(),
                may_change=False,
            )
        return self.page(
            request,
            "supervisor/modes.html",
            status_code=status_code,
            modes=modes,
            may_change=Role.REPRESENTATIVE in principal.roles,
            message=message,
            error=error,
        )

    async def modes_get(self, request: Request) -> Response:
        return self.modes_page(request)

    async def modes_post(self, request: Request) -> Response:
        """Disaster mode, the disaster fee exemption and a declared 一部負担金免除, in the
        counter's configuration (edge/counter_config.py) that the town's worker reads."""
        principal = _principal(request)
        town = principal.town_code
        form = await request.form()
        copay: CopayExemption | None = None
        if form.get("copay") == "1":
            try:
                copay = CopayExemption(
                    disaster=_form_text(form, "copay_disaster", 80),
                    valid_from=date.fromisoformat(_form_text(form, "copay_from", 10)),
                    valid_until=date.fromisoformat(_form_text(form, "copay_until", 10)),
                    reason=_form_text(form, "copay_reason", 40) or "住家の全半壊等",
                )
            except ValueError:
                copay = None
            if copay is None or not copay.disaster or copay.valid_until < copay.valid_from:
                return self.modes_page(
                    request,
                    status_code=400,
                    error="一部負担金免除は、災害名と期間（開始日・終了日）を正しく入力してください。",
                )
        modes = counter_config.TownModes(
            disaster_mode=form.get("disaster_mode") == "1",
            fee_exemption=form.get("fee_exemption") == "1",
            copay_exemption=copay,
        )
        counter_config.update(self.box.config.data_dir, lambda c: c.set_modes(town, modes))
        self.box.record(
            town,
            AuditKind.CONFIG_CHANGE,
            setting="modes",
            disaster_mode=modes.disaster_mode,
            fee_exemption=modes.fee_exemption,
            copay_exemption=copay.disaster if copay else "",
            by=principal.login_id,
        )
        return self.modes_page(request, message="設定を変更しました。")

    # ------------------------------------------------------------------ audit, registers

    async def audit(self, request: Request) -> Response:
        try:
            answer = await self.ask(request, "audit")
        except WorkerGone:
            return sealed_again(request)
        return self.page(request, "supervisor/audit.html", report=answer)

    async def registers(self, request: Request) -> Response:
        day = request.query_params.get("day", "")[:10]
        try:
            answer = await self.ask(request, "registers", {"day": day})
        except WorkerGone:
            return sealed_again(request)
        return self.page(request, "supervisor/registers.html", report=answer)

    # ------------------------------------------------------------------ printers

    def printers_page(
        self, request: Request, message: str = "", error: str = "", status_code: int = 200
    ) -> Response:
        queues = [{**q, "calibration": self.calibrations.get(q["name"])} for q in list_queues()]
        try:
            terminals = sorted(
                counter_config.load(self.box.config.data_dir).terminals.values(),
                key=lambda t: t.code,
            )
        except counter_config.ConfigError as exc:
            terminals, error = [], str(exc)
        return self.page(
            request,
            "supervisor/printers.html",
            status_code=status_code,
            queues=queues,
            terminals=terminals,
            message=message,
            error=error,
            client=auth.client_address(request),
        )

    async def printers_get(self, request: Request) -> Response:
        return self.printers_page(request)

    async def printers_post(self, request: Request) -> Response:
        principal = _principal(request)
        if principal.visiting:  # the host's printers are the host's to set up
            return self.printers_page(request, status_code=403, error=auth.MSG_FORBIDDEN_ROLE)
        form = await request.form()
        action = _form_text(form, "action", 20)
        if action in ("terminal", "remove"):
            return self._terminal(request, principal, form, action)
        queue = _form_text(form, "queue", 100)
        if queue not in {q["name"] for q in list_queues()}:
            return self.printers_page(request, error="プリンタを選んでください。", status_code=400)
        if action == "calibrate":
            try:
                calibration = Calibration(
                    float(str(form.get("dx_mm", ""))), float(str(form.get("dy_mm", "")))
                )
                self.calibrations.set(queue, calibration)
            except ValueError:
                return self.printers_page(
                    request,
                    status_code=400,
                    error="調整値は -20〜20 の数値（mm）で入力してください。測り直してください。",
                )
            self.box.record(
                self.box.config.town_code,
                AuditKind.CONFIG_CHANGE,
                setting="calibration",
                queue=queue,
                dx_mm=calibration.dx_mm,
                dy_mm=calibration.dy_mm,
                by=principal.login_id,
            )
            return self.printers_page(request, message=f"{queue} の調整値を登録しました。")
        try:
            pdf = calibration_sheet(self.box.config.town_code)
            job = submit_pdf(pdf, queue, title="calibration")
        except PrintJobError as exc:
            log.warning("test page to %s failed: %s", queue, exc)
            return self.printers_page(
                request,
                status_code=502,
                error=f"{queue} に印刷できませんでした。電源・用紙・接続を確認してください。",
            )
        return self.printers_page(
            request, message=f"{queue} に位置調整シートを送りました（{job.job_id}）。"
        )

    def _terminal(
        self, request: Request, principal: auth.Principal, form: Any, action: str
    ) -> Response:
        """Which CUPS queue each terminal of the counter prints to (edge/counter_config.py)."""
        code = _form_text(form, "code", 8).upper()
        data_dir = self.box.config.data_dir
        try:
            if action == "remove":
                counter_config.update(data_dir, lambda c: c.remove_terminal(code))
            else:
                queue = _form_text(form, "terminal_queue", 127)
                if queue and queue not in {q["name"] for q in list_queues()}:
                    raise counter_config.ConfigError(f"プリンタ「{queue}」はこの機器にありません。")
                addresses = [a for a in _form_text(form, "addresses", 400).split() if a]
                counter_config.update(
                    data_dir,
                    lambda c: c.set_terminal(
                        code,
                        queue=queue,
                        printer=_form_text(form, "printer", 8).upper() or "P01",
                        addresses=addresses,
                        label=_form_text(form, "label", 60),
                    ),
                )
        except counter_config.ConfigError as exc:
            return self.printers_page(request, error=str(exc), status_code=400)
        self.box.record(
            self.box.config.town_code,
            AuditKind.CONFIG_CHANGE,
            setting="terminal",
            terminal=code,
            action=action,
            by=principal.login_id,
        )
        done = "削除しました" if action == "remove" else "登録しました"
        return self.printers_page(request, message=f"端末 {code} の割り当てを{done}。")

    async def calibration_pdf(self, request: Request) -> Response:
        return download(calibration_sheet(self.box.config.town_code), "calibration.pdf")

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[Route]:
        supervisor = auth.require({Role.SUPERVISOR})
        representative = auth.require({Role.REPRESENTATIVE})
        deputy_view = auth.require({Role.SUPERVISOR, Role.REPRESENTATIVE})
        printers = auth.require({Role.SUPERVISOR, Role.ADMIN})
        return [
            Route("/supervisor", auth.require(MANAGERS)(self.menu)),
            Route("/supervisor/clerks", supervisor(self.clerks_get), methods=["GET"]),
            Route("/supervisor/clerks", supervisor(self.clerks_post), methods=["POST"]),
            Route("/supervisor/deputy", deputy_view(self.deputy_get), methods=["GET"]),
            Route("/supervisor/deputy", representative(self.deputy_post), methods=["POST"]),
            Route("/supervisor/modes", deputy_view(self.modes_get), methods=["GET"]),
            Route("/supervisor/modes", representative(self.modes_post), methods=["POST"]),
            Route("/supervisor/audit", supervisor(self.audit)),
            Route("/supervisor/registers", supervisor(self.registers)),
            Route("/supervisor/provisional", supervisor(self.provisional_get), methods=["GET"]),
            Route("/supervisor/provisional", supervisor(self.provisional_post), methods=["POST"]),
            Route("/supervisor/printers", printers(self.printers_get), methods=["GET"]),
            Route("/supervisor/printers", printers(self.printers_post), methods=["POST"]),
            Route("/supervisor/printers/sheet", printers(self.calibration_pdf)),
        ]
