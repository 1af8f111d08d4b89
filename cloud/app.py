"""The hub's web application: the composition root of the hub process.

The lifespan opens the data folder's store; routes serve sealed replicas to boxes and a
Japanese status page to the operator. Nothing leaves the hub in plaintext: documents go
out as blobs sealed to their town, clerks' keys wrapped under their passwords.

    GET /                                         status page (Japanese)
    GET /api/health                               {"status": "ok"}
    GET /api/towns                                [{"code", "name", "as_of", "documents"}]
    GET|POST /verify                              check a certificate's QR payload offline
    GET /api/federation                           {"hub_writer": hex, "towns": {code: public},
                                                   "names": {code: name}}
    GET /api/replica/{town}?box_town=C            {"as_of", "documents": {name: blob id},
                                                   "credentials": [login ids]}
    GET /api/replica/{town}/blobs/{name}?box_town=C   a sealed blob
    GET /api/replica/{town}/credentials/{login}?box_town=C   a clerk's credential record
    GET /api/replica/{town}/certificates          every clerk certificate (public)
    POST /api/replica/{town}/credentials/{login}, /revocations   clerk changes made on a
                                                  box (cloud/clerks_api.py)

    GET|POST /api/emergency/{host_town}          online activations (cloud/emergency.py)
    POST /api/audit/anchors                       boxes' audit chain heads (cloud/anchors.py)

A box of another town receives only the credentials of the town's emergency roster.

    POST /api/enrol/challenge, POST /api/enrol    box enrolment (cloud/enrolment.py)
    GET /api/alerts, GET /alerts, GET /api/time   alerts (cloud/alerts.py)
    /operator/…, POST /api/exports/{town}/{name}  the operator's screens (cloud/screens.py)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cloud.alerts import hub_alert_routes
from cloud.anchors import anchor_routes
from cloud.clerks_api import clerk_routes
from cloud.custody import HUB_WRITER_KEY, credential_is_for_roster, partner_copy_marker
from cloud.emergency import emergency_routes
from cloud.enrolment import HubEnrolment
from cloud.screens import HubScreens
from cloud.store import TownStore, known_towns
from cloud.sync_api import hub_service, sync_routes
from printing.verification import verify_for_page
from shared.blobs import blob_id
from shared.crypto import TownPublic
from shared.storage import SqliteStorage

_templates = Environment(
    loader=PackageLoader("cloud", "templates"), autoescape=select_autoescape()
)


def hub_db_path(data_dir: Path) -> Path:
    return data_dir / "hub.db"


def _town_summaries(storage: SqliteStorage) -> list[dict[str, object]]:
    summaries = []
    for code in known_towns(storage):
        store = TownStore(storage, code)
        settings = store.town_settings() or {}
        summaries.append(
            {
                "code": code,
                "name": settings.get("name", code),
                "as_of": store.as_of(),
                "documents": store.document_names(),
            }
        )
    return summaries


def create_app(data_dir: Path) -> Starlette:
    enrolment = HubEnrolment(data_dir)  # migrates hub.db; unseals the enrolment key

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = SqliteStorage(hub_db_path(data_dir))
        app.state.storage = storage
        try:
            yield
        finally:
            storage.close()

    async def status_page(request: Request) -> HTMLResponse:
        html = _templates.get_template("status.html").render(
            towns=_town_summaries(request.app.state.storage)
        )
        return HTMLResponse(html)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def towns(request: Request) -> JSONResponse:
        return JSONResponse(_town_summaries(request.app.state.storage))

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
            {"hub_writer": writer.decode() if writer else None, "towns": towns, "names": names}
        )

    def _area(storage: SqliteStorage, town: str, box_town: str) -> str:
        """Partner boxes get the copy without 個人番号 where the town chose that option."""
        if box_town != town and storage.load(partner_copy_marker(town)) is not None:
            return "sealed-partner"
        return "sealed"

    def _visible(storage: SqliteStorage, town: str, box_town: str) -> dict[str, bytes]:
        records = {k[2]: v for k, v in storage.load_range((town, "credential"))}
        if box_town == town:
            return records
        return {login: r for login, r in records.items() if credential_is_for_roster(r)}

    async def replica(request: Request) -> JSONResponse:
        storage = request.app.state.storage
        town = request.path_params["town"]
        box_town = request.query_params.get("box_town", "")
        area = _area(storage, town, box_town)
        blobs = {key[2]: blob_id(blob).hex() for key, blob in storage.load_range((town, area))}
        if not blobs:
            return JSONResponse({"error": "この町村の複製はありません。"}, status_code=404)
        return JSONResponse(
            {
                "as_of": TownStore(storage, town).as_of(),
                "documents": blobs,
                "credentials": sorted(_visible(storage, town, box_town)),
            }
        )

    async def sealed_blob(request: Request) -> Response:
        storage = request.app.state.storage
        town = request.path_params["town"]
        area = _area(storage, town, request.query_params.get("box_town", ""))
        blob = storage.load((town, area, request.path_params["name"]))
        if blob is None:
            return JSONResponse({"error": "指定された文書はありません。"}, status_code=404)
        return Response(blob, media_type="application/octet-stream")

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

    app = Starlette(
        routes=[
            Route("/", status_page),
            Route("/api/health", health),
            Route("/api/towns", towns),
            Route("/api/federation", federation),
            Route("/verify", verify_page, methods=["GET", "POST"]),
            Route("/api/replica/{town:str}", replica),
            Route("/api/replica/{town:str}/blobs/{name:str}", sealed_blob),
            Route("/api/replica/{town:str}/credentials/{login:str}", credential),
            Route("/api/replica/{town:str}/certificates", certificates),
            *sync_routes(hub_service),
            *enrolment.routes(),
            *hub_alert_routes(data_dir, enrolment),
            *clerk_routes(),
            *emergency_routes(),
            *anchor_routes(),
            *HubScreens(data_dir, _templates).routes(),
        ],
        lifespan=lifespan,
    )
    app.state.enrolment = enrolment  # sync admission (cloud/sync_api.py)
    return app
