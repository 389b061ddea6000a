"""The Starlette app: lifespan (migrations, engine, LISTEN connection, the sweeper of
chatroom/resolvers/sweeper.py), /graphql with GraphiQL and both websocket subprotocols,
/healthz."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

from graphql import GraphQLError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult

from chatroom.config import settings
from chatroom.db.feed import FeedCache
from chatroom.db.listener import Hub, Listener
from chatroom.db.migrate import upgrade_to_head
from chatroom.db.models import RoomEvent
from chatroom.db.session import Database, create_engine
from chatroom.resolvers import sweeper
from chatroom.resolvers.errors import AppError
from chatroom.resolvers.live import PRESENCE_INTERVAL
from chatroom.schema import (
    http_media,
    metrics,
    request_log,
    shared_results,
    trusted_documents,
    web,
)
from chatroom.schema.build import schema
from chatroom.schema.context import RequestContext
from chatroom.schema.limits import BodyLimit, RateLimiter, WebSocketLimits, bearer_token

log = logging.getLogger("chatroom")
# Where parse_http_body keeps a request's documentId until execute_single resolves it.
DOCUMENT_ID = "chatroom.documentId"


class ChatroomGraphQL(GraphQL[RequestContext, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> RequestContext:
        return RequestContext(
            db=request.app.state.db,
            hub=request.app.state.hub,
            feeds=request.app.state.feeds,
            rate_limiter=request.app.state.rate_limiter,
            header_token=bearer_token(request.headers.get("authorization")),
            request=request,
            response=response,
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """A request may name a trusted document by `documentId` instead of sending `query`
        (chatroom.schema.trusted_documents); the id is kept for execute_single."""
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData) and data.query is None:
            body = None if request.method == "GET" else await request.get_body()
            wanted = trusted_documents.request_document_id(body, request.query_params)
            if wanted is not None:
                data.extensions = {**(data.extensions or {}), DOCUMENT_ID: wanted}
        return data

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if request_data.query is None and request_data.extensions:
            try:
                request_data.query = trusted_documents.resolve_request(
                    None, request_data.extensions.pop(DOCUMENT_ID, None)
                )
            except AppError as refusal:  # nothing ran: a request error, coded like any other
                error = GraphQLError(refusal.message, extensions={"code": str(refusal.code)})
                return ExecutionResult(data=None, errors=[error])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    def encode_json(self, data: object) -> str | bytes:
        """A subscription result shared by subscribers with the same document is encoded once
        and framed per operation (chatroom.schema.shared_results)."""
        return shared_results.encode_message(data, super().encode_json)

    async def render_graphql_ide(self, request: Request) -> Response:
        page = await web.graphiql_page(request)
        return page if page is not None else await super().render_graphql_ide(request)

    # GraphQL over HTTP media types (chatroom.schema.http_media): the sub-response carries the
    # negotiated type from the request to create_response, which Strawberry gives no request.
    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = http_media.response_media_type(request.headers.get("accept"))
        request.state.sub_response = sub_response
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        sub_response = request.state.sub_response
        if sub_response.media_type == http_media.GRAPHQL_RESPONSE_JSON and (
            http_media.is_request_error(result)
        ):
            sub_response.status_code = 400
            return cast("GraphQLHTTPResponse", http_media.answer_request_error(dict(response)))
        return response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or http_media.JSON
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
        return response


class _IgnoreClientGone(logging.Filter):
    """Strawberry logs a traceback when a subscription's worker finds its client already gone
    (e.g. an agent restarting its wait). That is an expected end, not a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, WebSocketDisconnected)


logging.getLogger("strawberry.ws.task").addFilter(_IgnoreClientGone())


def _announcer(feeds: FeedCache, hub: Hub) -> Callable[[list[RoomEvent]], None]:
    """What a committed transaction tells this process: its events go into the rooms' feeds
    and the rooms' subscribers wake at once. The notification still comes (and wakes every
    other process); here it then finds nothing new."""

    def announce(events: list[RoomEvent]) -> None:
        for room_id, seq in feeds.committed(events).items():
            hub.publish(room_id, seq)

    return announce


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError(
            "DATABASE_URL is not set. Start the server with `chatroom serve` (it runs an "
            "embedded PostgreSQL when DATABASE_URL is unset), or set DATABASE_URL."
        )
    return url


# A live waiter refreshes lastSeenAt at least every PRESENCE_INTERVAL; three missed refreshes
# mean its process is gone.
STALE_WAITER_AFTER = timedelta(seconds=3 * PRESENCE_INTERVAL)


def create_app(url: str | None = None, *, apply_migrations: bool = True) -> Starlette:
    """App factory (uvicorn --factory). Reads DATABASE_URL unless a URL is given."""
    db_url = url or database_url()
    config = settings()
    trusted_documents.check_mode()
    request_log.configure()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if apply_migrations:
            await asyncio.to_thread(upgrade_to_head, db_url)
        app.state.db = Database(create_engine(db_url, pool_size=10, max_overflow=10))
        app.state.hub = Hub()
        app.state.feeds = FeedCache(app.state.db)
        app.state.hub.on_unwatched = app.state.feeds.forget
        app.state.db.on_commit = _announcer(app.state.feeds, app.state.hub)
        app.state.rate_limiter = RateLimiter(config.mutations_per_second, config.mutation_burst)
        app.state.listener = Listener(db_url, app.state.hub)
        if config.metrics:
            metrics.watch_app(app.state)
        background = [
            asyncio.create_task(app.state.listener.run(), name="listener"),
            asyncio.create_task(
                sweeper.sweep_forever(
                    app.state.db, config.lease_sweep_interval.total_seconds(), STALE_WAITER_AFTER
                ),
                name="lease-sweeper",
            ),
        ]
        try:
            await asyncio.wait_for(app.state.listener.connected.wait(), 10)
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.db.dispose()

    async def healthz(request: Request) -> Response:
        state = request.app.state
        try:
            async with state.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # the reason is logged, never sent
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "listener": "connected" if state.listener.connected.is_set() else "reconnecting",
                "listenerReconnects": state.listener.reconnects,
                "subscribers": state.hub.subscriber_count,
                "watchedRooms": state.hub.room_count,
                "roomFeeds": len(state.feeds),
            }
        )

    graphql: Any = ChatroomGraphQL(
        schema,
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
        # Counted by RequestContext.subscription_slot, which answers with a coded error.
        max_subscriptions_per_connection=None,
        # Same-origin websockets only, unless more origins are configured.
        allowed_origins=config.allowed_origins,
    )
    middleware = [
        Middleware(BodyLimit, max_bytes=config.max_body_bytes),
        Middleware(
            WebSocketLimits,
            max_message_bytes=config.max_ws_message_bytes,
            max_per_token=config.max_connections_per_token,
        ),
    ]
    if config.cors_origins:  # CORS is off unless origins are configured
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
            ),
        )
    return Starlette(
        middleware=middleware,
        routes=[
            Route("/healthz", healthz),
            *([Route("/metrics", metrics.metrics_endpoint)] if config.metrics else []),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *web.web_routes(),
        ],
        lifespan=lifespan,
    )
