"""The web page's routes (SPEC §8) and the offline GraphiQL page. Filled in by the web work."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute


def web_routes() -> list[BaseRoute]:
    """Routes for `/`, `/cli-auth` and the static assets."""
    return []


async def graphiql_page(request: Request) -> Response | None:
    """GraphiQL served from local assets; None falls back to Strawberry's own page."""
    return None
