"""The hub's web application: the composition root of the hub process.

The lifespan opens the data folder's store and the hub's replica (`cloud.replica`: the
sync log, opened with the custody's keys when the operator unsealed them at start-up);
routes serve the sync protocol, the clerks' credentials and public keys to boxes, and
Japanese pages to the operator. Nothing leaves the hub in plaintext: documents go out
only as sync blobs sealed to their town, clerks' keys wrapped under their passwords.

    GET /                                         status page (Japanese)
    GET /replicas                                 replica-health page (Japanese)
    GET /api/health                               {"status": "ok", "keys": bool}
    GET /api/towns                                [{"code", "name", "as_of", "documents"}]
    GET|POST /verify                              check a certificate's QR payload offline
    GET /api/federation                           {"hub_writer": hex, "towns": {code: public},
                                                   "names": {code: name}, "scopes":
                                                   {code: its partner copy's scope}}
    GET /api/replica/{town}?box_town=C            {"as_of", "credentials": [login ids]}
    GET /api/replica/{town}/credentials/{login}?box_town=C   a clerk's credential record
    GET /api/replica/{town}/certificates          every clerk certificate (public)
    POST /api/replica/{town}/credentials/{login}, /revocations   clerk changes made on a
                                                  box (cloud/clerks_api.py)
    POST /api/sync/{town}/hello|exchange          the sync protocol (`cloud.sync_api`)
    GET /api/replicas, GET /api/review, POST /api/review/{town}/{item}   (`cloud.sync_api`)

    GET|POST /api/emergency/{host_town}          online activations (cloud/emergency.py)
    POST /api/audit/anchors                       boxes' audit chain heads (cloud/anchors.py)

A box of another town receives only the credentials of the town's emergency roster.

    POST /api/enrol/challenge, POST /api/enrol    box enrolment (cloud/enrolment.py)
    GET /api/revocations                          signed list of revoked box keys (idem)
    GET /api/alerts, GET /alerts, GET /api/time   alerts (cloud/alerts.py)
    /operator/…, POST /api/exports/{town}/{name}  the operator's screens (cloud/screens.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cloud.alerts import HubAlerts
from cloud.anchors import anchor_routes
from cloud.clerks_api import clerk_routes
from cloud.custody import HUB_WRITER_KEY, Custody, credential_is_for_roster
from cloud.emergency import emergency_routes
from cloud.enrolment import HubEnrolment
from cloud.replica import HubReplica
from cloud.screens import HubScreens
from cloud.store import TownStore, known_towns
from cloud.sync_api import (
    hub_routes,
    hub_service,
    hub_sync_service,
    locked,
    separate_towns,
    sync_routes,
)
from printing.verification import verify_for_page
from shared.crypto import TownPublic
from shared.storage import SqliteStorage
from shared.sync.log import document_name

log = logging.getLogger(__name__)

_templates = Environment(
    loader=PackageLoader("cloud", "templates"), autoescape=select_autoescape()
)


def hub_db_path(data_dir: Path) -> Path:
    return data_dir / "hub.db"


def _town_summaries(hub: HubReplica) -> list[dict[str, object]]:
    summaries = []
    for code in known_towns(hub.storage):
        store = TownStore(hub.storage, code)
        settings = store.town_settings() or {}
        summaries.append(
            {
                "code": code,
                "name": settings.get("name", code),
                "as_of": store.as_of(),
                "documents": sorted({document_name(r.document) for r in hub.log.refs(code)}),
            }
        )
    return summaries


def create_app(
    data_dir: Path, custody: Custody | None = None, *, alert_interval_s: float = 300.0
) -> Starlette:
    """The hub. `custody`: the towns' keys and the hub's writer key, unsealed by the
    operator at start-up; without it the hub only relays (it cannot read the boxes'
    edits, list concurrent ones, or write)."""
    enrolment = HubEnrolment(data_dir)  # migrates hub.db; unseals the enrolment key
    alerts = HubAlerts(data_dir, enrolment, interval_s=alert_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = SqliteStorage(hub_db_path(data_dir))
        app.state.storage = storage
        hub = HubReplica(storage, custody, review=True)
        if custody is None:
            log.warning("the hub runs without its keys: relaying only")
        app.state.hub = hub
        service = app.state.sync_service = hub_sync_service(hub, enrolment)

        def open_towns() -> None:  # decrypting every town takes a while: not before serving
            try:
                with service.lock:
                    hub.open_all()
            except Exception:
                log.exception("opening the towns from the hub's log failed")
                raise

        opening = asyncio.create_task(asyncio.to_thread(open_towns))
        await alerts.start(storage)
        try:
            yield
        finally:
            await alerts.stop()
            with contextlib.suppress(Exception):
                await opening
            storage.close()

    async def status_page(request: Request) -> HTMLResponse:
        html = _templates.get_template("status.html").render(
            towns=_town_summaries(request.app.state.hub)
        )
        return HTMLResponse(html)

    async def replicas_page(request: Request) -> HTMLResponse:
        hub: HubReplica = request.app.state.hub
        view = await asyncio.to_thread(locked, request, hub.health)
        html = _templates.get_template("replicas.html").render(view=view)
        return HTMLResponse(html)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "keys": custody is not None})

    async def towns(request: Request) -> JSONResponse:
        return JSONResponse(_town_summaries(request.app.state.hub))

    async def verify_page(request: Request) -> HTMLResponse:
        """Anyone may check a certificate's QR against the towns' public keys held here."""
        storage = request.app.state.storage
        payload, verdict = "", None

        def current_public(town: str) -> TownPublic | None:
            data = storage.load((town, "public"))
            return None if data is None else TownPublic.from_json(json.loads(data))

        if request.method == "POST":
            payload = str((await request.form()).get("payload", ""))
            verdict = verify_for_page(payload, current_public)
        html = _templates.get_template("verify.html").render(payload=payload, verdict=verdict)
        return HTMLResponse(html)

    async def federation(request: Request) -> JSONResponse:
        storage = request.app.state.storage
        writer = storage.load(HUB_WRITER_KEY)
        towns, names = {}, {}
        for code in known_towns(storage):
            public = storage.load((code, "public"))
            if public is not None:
                towns[code] = json.loads(public)
                names[code] = (TownStore(storage, code).town_settings() or {}).get("name", code)
        return JSONResponse(
            {
                "hub_writer": writer.decode() if writer else None,
                "towns": towns,
                "names": names,
                "scopes": separate_towns(storage),
            }
        )

    def _visible(storage: SqliteStorage, town: str, box_town: str) -> dict[str, bytes]:
        records = {k[2]: v for k, v in storage.load_range((town, "credential"))}
        if box_town == town:
            return records
        return {login: r for login, r in records.items() if credential_is_for_roster(r)}

    async def replica(request: Request) -> JSONResponse:
        """What a box fetches beside the sync log: which clerks' credentials it holds."""
        storage = request.app.state.storage
        town = request.path_params["town"]
        box_town = request.query_params.get("box_town", "")
        if storage.load((town, "public")) is None:
            return JSONResponse({"error": "この町村の複製はありません。"}, status_code=404)
        return JSONResponse(
            {
                "as_of": TownStore(storage, town).as_of(),
                "credentials": sorted(_visible(storage, town, box_town)),
            }
        )

    async def certificates(request: Request) -> JSONResponse:
        """Every provisioned clerk's town-signed certificate (public; no keys): host boxes
        need the deputies' to check an activation's signature."""
        town = request.path_params["town"]
        records = request.app.state.storage.load_range((town, "credential"))
        return JSONResponse([json.loads(r)["certificate"] for _, r in records])

    async def credential(request: Request) -> Response:
        town = request.path_params["town"]
        visible = _visible(
            request.app.state.storage, town, request.query_params.get("box_town", "")
        )
        record = visible.get(request.path_params["login"])
        if record is None:
            return JSONResponse({"error": "指定された職員の資格情報はありません。"}, 404)
        return Response(record, media_type="application/json")

    screens = HubScreens(data_dir, _templates)
    app = Starlette(
        routes=[
            Route("/", status_page),
            Route("/api/health", health),
            Route("/api/towns", towns),
            Route("/api/federation", federation),
            Route("/verify", verify_page, methods=["GET", "POST"]),
            Route("/replicas", replicas_page),
            Route("/api/replica/{town:str}", replica),
            Route("/api/replica/{town:str}/credentials/{login:str}", credential),
            Route("/api/replica/{town:str}/certificates", certificates),
            *sync_routes(hub_service),
            *enrolment.routes(),
            *alerts.routes(),
            *clerk_routes(),
            *emergency_routes(),
            *anchor_routes(),
            *screens.routes(),
            *hub_routes(lambda request: request.app.state.hub, screens.operator_login),
        ],
        lifespan=lifespan,
    )
    app.state.enrolment = enrolment  # sync admission (cloud/sync_api.py)
    return app
