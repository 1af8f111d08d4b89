"""The hub's web application: the composition root of the hub process.

The lifespan opens the data folder's store; routes serve the towns' documents to boxes
and a Japanese status page to the operator. (Enrolment, sealed blobs and the sync
protocol replace the plaintext document endpoints as they land.)

    GET /                                  status page (Japanese)
    GET /api/health                        {"status": "ok"}
    GET /api/towns                         [{"code", "name", "as_of", "documents"}]
    GET /api/towns/{code}/documents/{name} the document's snapshot (application/octet-stream)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cloud.store import TownStore, known_towns
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

    async def document(request: Request) -> Response:
        code = request.path_params["code"]
        name = request.path_params["name"]
        data = TownStore(request.app.state.storage, code).snapshot(name)
        if data is None:
            return JSONResponse({"error": "指定された文書はありません。"}, status_code=404)
        return Response(data, media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/", status_page),
            Route("/api/health", health),
            Route("/api/towns", towns),
            Route("/api/towns/{code:str}/documents/{name:str}", document),
        ],
        lifespan=lifespan,
    )
