"""The web page's routes (SPEC §8) and the offline GraphiQL page.

Everything is plain files under ``chatroom/web``: one small single-page app (``index.html`` with ES
modules under ``js/``) served for ``/``, ``/rooms/{id}`` and ``/cli-auth``, and the GraphiQL page
(``graphiql.html``) for ``GET /graphql`` from a browser. Third-party browser builds are vendored in
``chatroom/web/vendor`` (see its README): no CDN is contacted at run time. No build step.

HTML pages carry a Content-Security-Policy that allows scripts only from this origin, so even
a sanitiser bug in the message feed could not run an injected inline script.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
STATIC_PREFIX = "/static"

# The app: nothing inline, nothing from elsewhere. Images only from here (or data: URLs), so a
# message cannot make the browser fetch a tracking pixel.
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' {ws}; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# GraphiQL (React + CodeMirror) sets inline styles; its scripts still come only from here.
GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self' {ws}; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Revalidate every time (ETag / Last-Modified make that a cheap 304): an upgraded server is
# never paired with a stale script.
NO_CACHE = "no-cache"


def _websocket_sources(request: Request) -> str:
    """The websocket origins of this page, for connect-src ('self' alone does not match ws: in
    every browser)."""
    host = request.headers.get("host", "")
    if not host or any(c in host for c in " ;,'\""):
        return ""
    return f"ws://{host} wss://{host}"


def _html(request: Request, name: str, csp: str) -> Response:
    return FileResponse(
        WEB_DIR / name,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": csp.format(ws=_websocket_sources(request)),
            "Cache-Control": NO_CACHE,
            "X-Content-Type-Options": "nosniff",
            # /cli-auth?code=... must not leak through a Referer header.
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


async def app_page(request: Request) -> Response:
    """The single-page app; it reads the path itself (/, /rooms/{id}, /account, /cli-auth)."""
    return _html(request, "index.html", APP_CSP)


class WebAssets(StaticFiles):
    """Static files with no-cache and nosniff headers."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = NO_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def web_routes() -> list[BaseRoute]:
    """Routes for `/`, `/rooms/{id}`, `/account`, `/cli-auth` and the static assets."""
    methods = ["GET", "HEAD"]
    return [
        Route("/", app_page, methods=methods),
        Route("/rooms/{room_id}", app_page, methods=methods),
        Route("/cli-auth", app_page, methods=methods),
        Route("/account", app_page, methods=methods),
        Mount(STATIC_PREFIX, app=WebAssets(directory=WEB_DIR), name="static"),
    ]


async def graphiql_page(request: Request) -> Response | None:
    """GraphiQL served from local assets; None falls back to Strawberry's own page."""
    return _html(request, "graphiql.html", GRAPHIQL_CSP)
