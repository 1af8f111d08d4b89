"""The visiting desk (連携窓口): how a partner town's clerk gets to their own town's data
on this host box, and where a host clerk is sent who looks for a partner's resident.

    GET /visiting[?town=CODE]   the steps for a visiting clerk (no login needed; no
                                personal data, only whether an activation is in force)

A host clerk's search never reaches a partner's data (the host's worker holds only the
host town). When what they typed names a partner town, one of its districts (大字), or a
resident id of a partner town, the search screen says so and links here instead of
answering "not found" — the resident must be served by that town's own clerks at the
visiting desk.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.activation import jst
from shared.districts import load_districts

if TYPE_CHECKING:
    from edge.app import Box
    from edge.supervisor import Render

_ID = re.compile(r"^\d{5}\d{6,}$")


@functools.cache
def _districts() -> dict[str, str]:
    """District name → town code, for districts whose name is unique to one town."""
    towns: dict[str, set[str]] = {}
    for district in load_districts():
        towns.setdefault(district.name, set()).add(district.town_code)
    return {name: next(iter(codes)) for name, codes in towns.items() if len(codes) == 1}


def partner_named(box: Box, own_town: str, text: str) -> str | None:
    """The partner town the query points at (by name, district or resident id), if any."""
    query = unicodedata.normalize("NFKC", text).strip()
    if not query:
        return None
    partners = [code for code in box.replica.towns() if code != own_town]
    for code in partners:
        name = box.replica.town_name(code)
        if (name != code and name in query) or (_ID.match(query) and query.startswith(code)):
            return code
    for district, code in _districts().items():
        if code in partners and len(district) >= 2 and district in query:
            return code
    return None


def routes(box: Box, render: Render) -> list[Route]:
    async def visiting(request: Request) -> Response:
        own = box.config.town_code
        wanted = request.query_params.get("town", "")
        towns = []
        now = box.clock.now()
        for code in box.replica.towns():
            if code == own:
                continue
            active = [
                a
                for a in box.activations.activations(code)
                if a.host_box == box.config.host_box and a.valid_at(now)
            ]
            towns.append(
                {
                    "code": code,
                    "name": box.replica.town_name(code),
                    "chosen": code == wanted,
                    "until": jst(max(a.expires_at for a in active)) if active else "",
                }
            )
        return render("visiting.html", host_name=box.replica.town_name(own), towns=towns)

    return [Route("/visiting", visiting)]
