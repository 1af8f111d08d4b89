"""The emergency procedure on the box: the seed report's three cases as checklists whose
ticks are audit entries, and the end of an emergency.

    GET  /emergency[?case=1|2|3]   the cases and the chosen case's checklist (any clerk)
    POST /emergency/step           tick (or untick) a step           (supervisor, representative)
    POST /emergency/end            end the emergency for the session's town: export
                                   (edge/emergency_export.py), revoke this box's activations
                                   of the town (signed in the worker by a deputy), seal the
                                   town (its worker stops, its sessions end)
    GET  /emergency/exports/{name} download a sealed export (supervisor, representative)

Ticks are kept for display under (town, "emergency", "checklist") as
{case: {step: {"by", "at"}}} (no personal data) and each tick or untick is an
`emergency_step` audit entry sealed to the town; the end is an `emergency_ended` entry.
Sealed exports are kept under (town, "export", name) — sealed to the town, so a host
supervisor may hand the file over without being able to read it — and are handed to the
hub by a pull started at once (`Box.pull_soon`), or by the first later pull that reaches
the hub (`push_exports`, marked under (town, "export-sent", name)), where the operator's
intake screen lists them (cloud/screens.py).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edge import auth
from edge.counter_routes import download
from edge.exports import SUFFIX
from edge.supervisor import sealed_again
from edge.workers import WorkerGone
from shared.activation import ActivationError, jst
from shared.audit import AuditKind
from shared.model import Role
from shared.storage import Storage

if TYPE_CHECKING:
    from edge.app import Box
    from edge.supervisor import Render

log = logging.getLogger(__name__)

CASES: dict[str, tuple[str, list[str]]] = {
    "1": (
        "ケース1：クラウドセンターへの回線が切れた（自庁舎の連携ボックスで業務を続ける）",
        [
            "ハブとの接続が「未接続」になっていることを確認し、情報担当に連絡した",
            "画面に出るデータの時点（前日など）を確認し、窓口に掲示した",
            "職員がいつもの職員IDとパスワードでログインできることを確認した",
            "プリンタで位置調整シートを印刷し、用紙と印字位置を確認した",
            "異動の届出は受付だけを行い、処理はしないことを窓口の職員に周知した",
            "データが古い間、第三者・士業からの請求は受付だけになることを確認した",
            "回線の復旧後、ハブとの接続と同期を確認した",
            "緊急時運用を終了し、交付簿と受付を基幹系システムに引き渡した",
        ],
    ),
    "2": (
        "ケース2：庁舎が被災した（連携町村の庁舎から、クラウドセンターのデータで業務をする）",
        [
            "代表者（または代表者名簿の順位者）が連携町村に利用開始を依頼した（覚書第2条）",
            "代表者が利用開始コードを発行し、受入側の監督者に伝えた",
            "受入側の監督者が利用開始コードを受け付けた",
            "出向した職員が受入側の端末・プリンタで自町村を選び、いつものIDでログインした",
            "証明書の町村名・認証者（職務代理者を含む）が正しいことを確認した",
            "交付の手数料を自町村の歳入として、受入側の現金と分けて管理している",
            "業務の終了時に利用開始を取り消し、町のデータを閉じた",
            "交付簿と受付を基幹系システムに引き渡した",
        ],
    ),
    "3": (
        "ケース3：クラウドセンターと庁舎が被災した（連携町村が預かる複製で業務をする）",
        [
            "ハブ（クラウドセンター）に接続できないことを確認した",
            "代表者が利用開始コードを発行し（電話での読み上げ可）、受入側の監督者が受け付けた"
            "（代表者に連絡できないときは緊急起動＝ブレークグラス、後で追認）",
            "出向した職員が自町村の複製をいつものIDで開けること、ほかの町村は開けないことを確認した",
            "データの時点（前日など）を窓口に掲示し、異動は受付だけとした",
            "住民票・税証明・資格確認書・全住民一覧が交付できることを確認した",
            "ハブの復旧後、連携ボックスの同期と監査ログの検証を行った",
            "業務の終了時に利用開始を取り消し、町のデータを閉じた",
            "交付簿・受付・暫定異動を基幹系システムに引き渡し、突合した",
        ],
    ),
}
MANAGERS = {Role.SUPERVISOR, Role.REPRESENTATIVE}


def _checklist_key(town: str) -> tuple[str, str, str]:
    return (town, "emergency", "checklist")


def _principal(request: Request) -> auth.Principal:
    principal = auth.current_principal(request)
    assert principal is not None
    return principal


class EmergencyScreens:
    def __init__(self, box: Box, render: Render) -> None:
        self.box = box
        self.render = render

    def ticks(self, town: str) -> dict[str, dict[str, dict[str, Any]]]:
        raw = self.box.storage.load(_checklist_key(town))
        return {} if raw is None else dict(json.loads(raw))

    def exports(self, principal: auth.Principal) -> list[tuple[str, str]]:
        """(town, name) of sealed exports this session may download: its own town's, and
        for the host town's supervisors those of every town that ended here."""
        towns = [principal.town_code]
        if principal.town_code == self.box.config.town_code:
            towns = self.box.replica.towns() or towns
        return [
            (key[0], key[2])
            for town in towns
            for key, _ in self.box.storage.load_range((town, "export"))
        ]

    def page(self, request: Request, status_code: int = 200, **context: Any) -> Response:
        principal = _principal(request)
        case = request.query_params.get("case", "")
        if case not in CASES:
            case = ""
        manager = principal.has_any(MANAGERS)
        return self.render(
            "emergency.html",
            status_code=status_code,
            principal=principal,
            cases=CASES,
            case=case,
            ticks=self.ticks(principal.town_code).get(case, {}),
            jst=jst,
            may_tick=manager,
            may_end=manager,
            exports=self.exports(principal) if manager else [],
            **context,
        )

    async def show(self, request: Request) -> Response:
        return self.page(request)

    async def step(self, request: Request) -> Response:
        principal = _principal(request)
        form = await request.form()
        case, step = str(form.get("case", "")), str(form.get("step", ""))
        if case not in CASES or not step.isdigit() or int(step) >= len(CASES[case][1]):
            return self.page(request, status_code=400, error="手順を選んでください。")
        ticks = self.ticks(principal.town_code)
        steps = ticks.setdefault(case, {})
        done = form.get("done") == "1"
        if done:
            steps[step] = {"by": principal.login_id, "at": self.box.clock.now()}
        else:
            steps.pop(step, None)
        self.box.storage.save(_checklist_key(principal.town_code), json.dumps(ticks).encode())
        self.box.record(
            principal.town_code,
            AuditKind.EMERGENCY_STEP,
            case=int(case),
            step=int(step) + 1,
            done=done,
            by=principal.login_id,
            host_town=self.box.config.town_code,
        )
        return RedirectResponse(f"/emergency?case={case}#step{step}", status_code=303)

    async def end(self, request: Request) -> Response:
        principal = _principal(request)
        town = principal.town_code
        form = await request.form()
        case = str(form.get("case", ""))
        if form.get("confirm") != "1":
            return self.page(
                request,
                status_code=400,
                error="終了してよいことを確認するチェックを入れてください。",
            )
        now = self.box.clock.now()
        active = [
            a
            for a in self.box.activations.activations(town)
            if a.host_box == self.box.config.host_box and a.valid_at(now)
        ]
        try:
            answer = await self.box.ask(
                principal,
                {
                    "op": "emergency_export",
                    "form": {
                        "case": case if case in CASES else "",
                        "checklist": self.ticks(town),
                        "host_town": self.box.config.town_code,
                        "activations": [a.id.hex() for a in active],
                    },
                },
            )
            if not answer.get("ok"):
                return self.page(request, status_code=400, error=str(answer.get("error", "")))
            # Every revocation is signed before any is applied: applying the one that
            # names this session's clerk ends the session (edge.emergency.session_allowed).
            signed = [
                await self.box.ask(
                    principal, {"op": "sign_revocation", "form": {"target": a.id.hex()}}
                )
                for a in active
            ]
        except WorkerGone:
            return sealed_again(request)
        revoked, not_revoked = [], []
        for accepted, revocation in zip(active, signed, strict=True):
            try:
                if not revocation.get("ok"):
                    raise ActivationError(str(revocation.get("error", "")))
                self.box.activations.revoke(str(revocation["code"]))
                revoked.append(accepted.id.hex())
            except ActivationError as exc:
                log.warning("activation %s not revoked at the end: %s", accepted.id.hex(), exc)
                not_revoked.append(accepted)
        name = str(answer["name"])
        self.box.storage.save((town, "export", name), bytes.fromhex(answer["sealed"]))
        self.box.pull_soon()  # to the hub now if it answers, else at the first pull that does
        manifest = answer["manifest"]
        self.box.record(
            town,
            AuditKind.EMERGENCY_ENDED,
            case=case,
            export=name,
            files=sorted(manifest["files"]),
            revoked=revoked,
            not_revoked=[a.id.hex() for a in not_revoked],
            by=principal.login_id,
            host_town=self.box.config.town_code,
        )
        await self.box.seal(town)
        log.info("emergency of %s ended by %r; export %s", town, principal.login_id, name)
        response = self.render(
            "emergency_ended.html",
            town_name=self.box.replica.town_name(town),
            export_name=name,
            town=town,
            manifest=manifest,
            revoked=len(revoked),
            not_revoked=not_revoked,
            jst=jst,
        )
        auth.clear_session_cookie(response)
        return response

    async def download(self, request: Request) -> Response:
        principal = _principal(request)
        town, name = request.path_params["export_town"][:8], request.path_params["name"][:80]
        if (town, name) not in self.exports(principal):
            return self.page(
                request, status_code=404, error="指定された書き出しファイルはありません。"
            )
        data = self.box.storage.load((town, "export", name))
        assert data is not None
        self.box.record(
            town, AuditKind.EXPORT, export=name, by=principal.login_id, by_town=principal.town_code
        )
        return download(data, f"{name}{SUFFIX}", "application/octet-stream")

    def routes(self) -> list[Route]:
        managers = auth.require(MANAGERS)
        return [
            Route("/emergency", auth.require()(self.show)),
            Route("/emergency/step", managers(self.step), methods=["POST"]),
            Route("/emergency/end", managers(self.end), methods=["POST"]),
            Route("/emergency/exports/{export_town:str}/{name:str}", managers(self.download)),
        ]


def push_exports(storage: Storage, client: httpx.Client, towns: list[str]) -> int:
    """Hand every sealed emergency export not yet at the hub to it; returns how many."""
    sent = 0
    for town in towns:
        for key, blob in storage.load_range((town, "export")):
            if storage.load((town, "export-sent", key[2])) is not None:
                continue
            response = client.post(f"/api/exports/{town}/{key[2]}", content=blob)
            if response.status_code >= 500:
                response.raise_for_status()
            if response.status_code != 200:
                log.warning("hub refused export %s/%s: %s", town, key[2], response.text[:200])
            else:
                sent += 1
            storage.save((town, "export-sent", key[2]), b"1")
    return sent
