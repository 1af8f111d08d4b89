"""The box's web application: the composition root of the box process.

The lifespan loads the box's own town and builds its search index; routes serve the
clerk's search page (Japanese, server-rendered, works without JavaScript) and a JSON
search API beside it.

    GET /                  search page; ?q= runs a search
    GET /api/search?q=     {"town", "as_of", "results": [...]}
    GET /api/health        {"status": "ok", "town": code, "residents": n}
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from edge.town import OpenTown
from shared.registry import DEFAULT_SHARDS

MAX_QUERY_CHARS = 100

_templates = Environment(loader=PackageLoader("edge", "templates"), autoescape=select_autoescape())


def create_app(hub_url: str, town_code: str, shards: int = DEFAULT_SHARDS) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.town = await asyncio.to_thread(OpenTown.fetch, hub_url, town_code, shards)
        yield

    def _query(request: Request) -> str:
        return request.query_params.get("q", "").strip()[:MAX_QUERY_CHARS]

    async def search_page(request: Request) -> HTMLResponse:
        town: OpenTown = request.app.state.town
        query = _query(request)
        results = town.search(query) if query else []
        html = _templates.get_template("search.html").render(
            town=town, query=query, results=results, searched=bool(query)
        )
        return HTMLResponse(html)

    async def search_api(request: Request) -> JSONResponse:
        town: OpenTown = request.app.state.town
        query = _query(request)
        if not query:
            return JSONResponse({"error": "検索語を入力してください。"}, status_code=400)
        results = [dataclasses.asdict(row) for row in town.search(query)]
        return JSONResponse({"town": town.code, "as_of": town.as_of, "results": results})

    async def health(request: Request) -> JSONResponse:
        town: OpenTown = request.app.state.town
        return JSONResponse({"status": "ok", "town": town.code, "residents": len(town.index)})

    return Starlette(
        routes=[
            Route("/", search_page),
            Route("/api/search", search_api),
            Route("/api/health", health),
        ],
        lifespan=lifespan,
    )
