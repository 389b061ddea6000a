"""The Starlette app: lifespan (migrations, engine), /graphql with GraphiQL, /healthz."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from chatroom.db.migrate import upgrade_to_head
from chatroom.db.session import Database, create_engine
from chatroom.schema.build import schema
from chatroom.schema.context import RequestContext, bearer_token

log = logging.getLogger("chatroom")


class ChatroomGraphQL(GraphQL[RequestContext, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> RequestContext:
        db: Database = request.app.state.db
        return RequestContext(
            db=db,
            token=bearer_token(request.headers.get("authorization")),
            request=request,
            response=response,
        )


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError(
            "DATABASE_URL is not set. Start the server with `chatroom serve` (it runs an "
            "embedded PostgreSQL when DATABASE_URL is unset), or set DATABASE_URL."
        )
    return url


def create_app(url: str | None = None, *, apply_migrations: bool = True) -> Starlette:
    """App factory (uvicorn --factory). Reads DATABASE_URL unless a URL is given."""
    db_url = url or database_url()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if apply_migrations:
            await asyncio.to_thread(upgrade_to_head, db_url)
        app.state.db = Database(create_engine(db_url, pool_size=10, max_overflow=10))
        try:
            yield
        finally:
            await app.state.db.dispose()

    async def healthz(request: Request) -> Response:
        try:
            async with request.app.state.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # the reason is logged, never sent
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    graphql: Any = ChatroomGraphQL(
        schema,
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
    )
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        lifespan=lifespan,
    )
