"""The counter's screens on the box's web front: request forms for every counter
document, the districts page for list copies, issued copies for download or printing on
the terminal's CUPS queue, and an audit entry for each of those acts.

Routes (stable: `renkei drill` drives them over HTTP; fields in edge/documents.py and
docs/counter.md):

    GET  /resident/{id}?document=KEY   household and the request form for one document
    POST /issue                        decide, number, register, render → PDF or result page
    GET  /printed/{number}.pdf         an issued copy again, as kept (sealed) on the box
    GET  /districts                    大字 of the town: 全住民一覧 (and 要支援者名簿) forms
    POST /list                         a numbered, logged list copy → PDF or result page
    POST /spoil                        書き損じ・紙詰まり: void a copy's number, reprint it
                                       under a new number → PDF or result page
    POST /export                       what=list (a district's 全住民一覧 as CSV) or
                                       what=intake: a file sealed to the town (.csv.rkx)
    GET  /intake                       intake (申請受付) form and the applications taken
    POST /intake                       record an application → the receipt PDF
    GET  /intake/{受付番号}/receipt.pdf the receipt again, as kept
    GET  /fonts/names-{mj|town|gyosei}.ttf   the session town's name fonts (edge.webfont)

The front never holds a key or a record beyond the page it renders: every decision,
number and PDF comes from the town's worker (edge.worker). The front adds what only it
knows — the terminal (its LAN address), the terminal's printer, the host office when the
session is a visiting town's — and writes the audit entries (sealed to the town, box key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from edge import auth, counter_config, visiting
from edge.documents import (
    COUNTER_DOCUMENTS,
    ITEM_LABELS,
    CounterFormError,
    document_for,
    form_from_post,
)
from edge.webfont import FACES
from edge.workers import WorkerGone
from shared.audit import AuditKind, AuditLog
from shared.issuance import JST, Policy
from shared.issuance.requests import (
    IdDocumentKind,
    IdentityMethod,
    LegalBasis,
    Profession,
    RequesterKind,
    ThirdPartyGround,
)
from shared.model import Role
from shared.wareki import to_wareki

log = logging.getLogger(__name__)

Render = Callable[..., HTMLResponse]
LIST_ROLES = frozenset({Role.SUPERVISOR, Role.REPRESENTATIVE, Role.ADMIN})


def status(box: Any, town: str) -> dict[str, Any]:
    """What every counter screen shows: the data's as-of time, amber past the configured
    age (counter.json, by default the rules' stale age), and whether the hub is reachable."""
    text = box.replica.as_of(town)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return {"as_of_label": text or "不明", "stale": True, "hub": box.hub_reachable}
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(JST)
    label = f"{to_wareki(local.date())} {local.hour}時{local.minute:02d}分"
    try:
        limit = timedelta(minutes=counter_config.load(box.config.data_dir).stale_after_minutes)
    except counter_config.ConfigError:
        limit = Policy().registry_stale_after
    stale = datetime.now(UTC) - moment > limit
    return {"as_of_label": label, "stale": stale, "hub": box.hub_reachable}


def download(data: bytes, filename: str, media_type: str = "application/pdf") -> Response:
    """A file the browser saves rather than shows (an issued copy, a receipt, an export)."""
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def desk_for(box: Any, request: Request, principal: auth.Principal) -> dict[str, Any]:
    """The desk as the worker needs it (see edge.counter.DeskInfo)."""
    config = counter_config.load(box.config.data_dir)
    terminal = config.terminal_for(auth.client_address(request))
    host = box.config.town_code
    host_office = "" if principal.town_code == host else f"{box.replica.town_name(host)}役場"
    head = b"\0" * 32
    public = box.replica.town_public(principal.town_code)
    if public is not None:
        found = AuditLog(box.storage, public).head(box.audit.writer_id)
        if found is not None:
            head = found.hash
    return {
        "terminal": terminal.code,
        "printer": terminal.printer,
        "queue": terminal.queue,
        "host_town": host,
        "host_office": host_office,
        "audit_head": head.hex(),
    }


def counter_routes(
    box: Any, render: Render, sealed_again: Callable[[Request], Response]
) -> list[Route]:
    def page(name: str, request: Request, status_code: int = 200, **context: Any) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        return render(
            name,
            status_code=status_code,
            principal=principal,
            status=status(box, principal.town_code),
            **context,
        )

    def refusal(
        request: Request, reason: str, tell: str = "", code: int = 400, **more: Any
    ) -> Response:
        return page("refusal.html", request, code, reason=reason, tell=tell, **more)

    async def ask(request: Request, message: dict[str, Any]) -> dict[str, Any] | None:
        principal = auth.current_principal(request)
        assert principal is not None
        try:
            answer: dict[str, Any] = await box.ask(principal, message)
        except WorkerGone:
            return None
        return answer

    @auth.require()
    async def resident_page(request: Request) -> Response:
        """A resident's household and the request form for one document."""
        principal = auth.current_principal(request)
        assert principal is not None
        resident_id = request.path_params["resident_id"][:64]
        partner = visiting.partner_named(box, principal.town_code, resident_id)
        if partner is not None:  # another town's resident: their clerks, at the visiting desk
            return RedirectResponse(f"/visiting?town={partner}", status_code=303)
        key = request.query_params.get("document", "juminhyo")[:32]
        answer = await ask(request, {"op": "household", "resident_id": resident_id})
        if answer is None:
            return sealed_again(request)
        household = answer.get("household") if answer.get("ok") else None
        if household is None:
            return refusal(request, "指定された住民は見つかりません。", code=404)
        try:
            document = document_for(key)
        except CounterFormError:  # an unknown document key in the URL
            document = COUNTER_DOCUMENTS[0]
        subject = next(m for m in household["members"] if m["id"] == resident_id)
        # 暫定異動 recorded by a supervisor (edge/provisional.py): flagged per member
        flags = await ask(
            request,
            {"op": "provisional_for",
             "form": {"residents": [m["id"] for m in household["members"]]}},
        )  # fmt: skip
        provisional = flags.get("flags", {}) if flags and flags.get("ok") else {}
        config = counter_config.load(box.config.data_dir)
        terminal = config.terminal_for(auth.client_address(request))
        modes = config.modes(principal.town_code)
        return page(
            "request.html",
            request,
            household=household,
            subject=subject,
            choices=household.get("choices", {}),
            fees=household.get("fees", {}),
            documents=COUNTER_DOCUMENTS,
            document=document,
            fields={f.value for f in document.fields},
            item_labels=ITEM_LABELS,
            requesters=[k.value for k in RequesterKind],
            identities=[m.value for m in IdentityMethod],
            id_documents=[d.value for d in IdDocumentKind],
            legal_bases=[b.value for b in LegalBasis],
            grounds=[g.value for g in ThirdPartyGround],
            professions=[p.value for p in Profession],
            modes=modes,
            terminal=terminal,
            provisional=provisional,
        )

    def _record_issue(
        principal: auth.Principal, answer: dict[str, Any], desk: dict[str, Any]
    ) -> None:
        for copy in answer.get("copies", []):
            box.record(
                principal.town_code,
                AuditKind.ISSUANCE,
                number=copy["number"],
                document=answer.get("document", ""),
                list_number=answer.get("list_number", ""),
                district=answer.get("district", ""),
                subjects=answer.get("subjects", []),
                requester=answer.get("requester", ""),
                clerk=principal.login_id,
                visiting=principal.visiting,
                terminal=desk["terminal"],
                fee=answer.get("fee", 0),
                reduction=answer.get("reduction", ""),
                handover=answer.get("handover", ""),
                reprint_of=answer.get("spoiled", ""),
            )
            if copy.get("job") or copy.get("print_error"):
                box.record(
                    principal.town_code,
                    AuditKind.PRINT,
                    number=copy["number"],
                    queue=desk["queue"],
                    job=copy.get("job", ""),
                    error=copy.get("print_error", ""),
                    clerk=principal.login_id,
                    terminal=desk["terminal"],
                )

    def _issued(request: Request, answer: dict[str, Any], output: str) -> Response:
        copies = answer.get("copies", [])
        if output != "print" and len(copies) == 1:
            number = copies[0]["number"]
            name = f"{answer.get('document', 'document')}-{number}.pdf"
            return download(bytes.fromhex(copies[0]["pdf"]), name)
        for copy in copies:
            copy.pop("pdf", None)
        return page("issued.html", request, answer=answer)

    async def _submit(request: Request, op: str) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        form = await request.form()
        fields = form_from_post([(k, str(v)) for k, v in form.multi_items()])
        desk = desk_for(box, request, principal)
        answer = await ask(request, {"op": op, "form": fields, "desk": desk})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, str(answer.get("error", "")))
        if answer.get("spoiled"):
            box.record(
                principal.town_code,
                AuditKind.SPOILED,
                number=answer["spoiled"],
                reason=str(fields.get("reason", "")),
                sheets=str(fields.get("sheets", "")),
                clerk=principal.login_id,
                terminal=desk["terminal"],
            )
        if not answer.get("issued"):
            box.record(
                principal.town_code,
                AuditKind.REFUSAL,
                document=answer.get("document", ""),
                outcome=answer.get("outcome", ""),
                code=answer.get("code", ""),
                subjects=fields.get("subject", []),
                requester=fields.get("requester", ""),
                clerk=principal.login_id,
                terminal=desk["terminal"],
            )
            return refusal(
                request,
                str(answer.get("reason", "")),
                str(answer.get("tell_applicant", "")),
                code=200,
                outcome=answer.get("outcome", ""),
                intake=bool(answer.get("intake")),
                form=fields,
            )
        _record_issue(principal, answer, desk)
        return _issued(request, answer, str(fields.get("output", "")))

    @auth.require()
    async def issue_submit(request: Request) -> Response:
        """Decide under the issuance rules; hand over the PDF or explain the refusal."""
        return await _submit(request, "issue")

    @auth.require()
    async def list_submit(request: Request) -> Response:
        return await _submit(request, "list")

    @auth.require()
    async def spoil_submit(request: Request) -> Response:
        """書き損じ・紙詰まり: void the copy's number, reprint under a new one."""
        return await _submit(request, "spoil")

    @auth.require()
    async def printed(request: Request) -> Response:
        """An issued copy again, exactly as kept — never re-rendered from today's data."""
        principal = auth.current_principal(request)
        assert principal is not None
        number = request.path_params["number"][:64]
        answer = await ask(request, {"op": "printed", "number": number})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, str(answer.get("error", "")), code=404)
        box.record(
            principal.town_code,
            AuditKind.REPRINT,
            number=number,
            clerk=principal.login_id,
            client=auth.client_address(request),
            how="download",
        )
        return download(bytes.fromhex(answer["pdf"]), f"{number}.pdf")

    @auth.require()
    async def districts(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        answer = await ask(request, {"op": "districts"})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, str(answer.get("error", "")))
        config = counter_config.load(box.config.data_dir)
        return page(
            "districts.html",
            request,
            districts=answer["districts"],
            may_support=principal.has_any(LIST_ROLES),
            terminal=config.terminal_for(auth.client_address(request)),
        )

    def intake_reason(town: str, form_reason: str) -> str:
        """Why the counter takes an application instead of acting: stale data, the hub
        out of reach, or the rules' intake-only decision. "" = intake is not needed."""
        now = status(box, town)
        if now["stale"]:
            return f"記録が最新でないため（{now['as_of_label']}現在の記録）"
        if not now["hub"]:
            return "ハブ（基幹系）に接続できないため"
        return "交付の判断が受付のみのため" if form_reason == "decision" else ""

    @auth.require()
    async def intake_page(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        answer = await ask(request, {"op": "intake_list"})
        if answer is None:
            return sealed_again(request)
        query = request.query_params
        return page(
            "intake.html",
            request,
            applications=answer.get("applications", []),
            reason=intake_reason(principal.town_code, query.get("from", "")),
            prefill={k: query.get(k, "")[:100] for k in
                     ("document", "subject", "subject_name", "applicant_name", "from")},
            documents=COUNTER_DOCUMENTS,
        )  # fmt: skip

    @auth.require()
    async def intake_submit(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        form = await request.form()
        fields = form_from_post([(k, str(v)) for k, v in form.multi_items()])
        fields["subject"] = (fields.get("subject") or [""])[0]
        reason = intake_reason(principal.town_code, str(fields.get("from", "")))
        if not reason:
            return refusal(
                request,
                "記録は最新で、ハブにも接続できています。通常どおり交付・届出の処理をしてください。",
            )
        fields["reason"] = reason
        desk = desk_for(box, request, principal)
        answer = await ask(request, {"op": "intake", "form": fields, "desk": desk})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, str(answer.get("error", "")))
        box.record(
            principal.town_code,
            AuditKind.INTAKE,
            number=answer["number"],
            intake_kind=answer["kind"],
            subject=answer["subject"],
            clerk=principal.login_id,
            terminal=desk["terminal"],
            reason=reason,
        )
        # Sealed for the hub, handed over by a pull started now or the first later pull
        # that reaches it (edge.procedure.push_exports): the intake queue hears of it on
        # reconnect.
        handoff = await ask(request, {"op": "intake_handoff", "form": {"number": answer["number"]}})
        if handoff is not None and handoff.get("ok"):
            box.storage.save(
                (principal.town_code, "export", str(handoff["name"])),
                bytes.fromhex(str(handoff["sealed"])),
            )
            box.pull_soon()
        return download(bytes.fromhex(answer["pdf"]), f"{answer['number']}.pdf")

    @auth.require()
    async def intake_receipt(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        number = request.path_params["number"][:64]
        answer = await ask(request, {"op": "intake_receipt", "number": number})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, "この受付番号の受付票はこの機器にありません。", code=404)
        box.record(principal.town_code, AuditKind.REPRINT, number=number,
                   clerk=principal.login_id, how="intake receipt")  # fmt: skip
        return download(bytes.fromhex(answer["pdf"]), f"{number}.pdf")

    @auth.require()
    async def export(request: Request) -> Response:
        """A CSV sealed to the town (edge.exports), audited as an export."""
        principal = auth.current_principal(request)
        assert principal is not None
        form = await request.form()
        fields = form_from_post([(k, str(v)) for k, v in form.multi_items()])
        desk = desk_for(box, request, principal)
        answer = await ask(request, {"op": "export", "form": fields, "desk": desk})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return refusal(request, str(answer.get("error", "")))
        box.record(
            principal.town_code,
            AuditKind.EXPORT,
            what=answer["what"],
            file=answer["name"],
            rows=answer["rows"],
            list_number=answer.get("list_number", ""),
            recipient=str(fields.get("recipient", "")),
            purpose=str(fields.get("purpose", "")),
            clerk=principal.login_id,
            terminal=desk["terminal"],
            sealed_to="town",
        )
        return download(bytes.fromhex(answer["file"]), answer["name"], "application/octet-stream")

    @auth.require()
    async def webfont(request: Request) -> Response:
        """外字 on screen: the session town's name fonts, never another town's."""
        face = request.path_params["face"]
        if face not in FACES:
            return Response(status_code=404)
        answer = await ask(request, {"op": "webfont", "face": face})
        if answer is None:
            return sealed_again(request)
        if not answer.get("ok"):
            return Response(status_code=404)
        return Response(
            bytes.fromhex(answer["font"]),
            media_type="font/ttf",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    return [
        Route("/fonts/names-{face:str}.ttf", webfont),
        Route("/intake", intake_page, methods=["GET"]),
        Route("/intake", intake_submit, methods=["POST"]),
        Route("/intake/{number:str}/receipt.pdf", intake_receipt),
        Route("/export", export, methods=["POST"]),
        Route("/resident/{resident_id:str}", resident_page),
        Route("/issue", issue_submit, methods=["POST"]),
        Route("/list", list_submit, methods=["POST"]),
        Route("/spoil", spoil_submit, methods=["POST"]),
        Route("/printed/{number:str}.pdf", printed),
        Route("/districts", districts),
    ]
