"""Transport limits: request body size, websocket message size, websocket connections per
token, and a per-token rate limit on mutations. Query depth, aliases and tokens are schema
extensions (build.py). Counters here are per server process (documented in docs/security.md)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import ErrorCode, RateLimited


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RateLimiter:
    """Mutations per token (or per client address when there is no token)."""

    MAX_KEYS = 100_000  # bound the memory an attacker can make us spend on buckets

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key: str) -> None:
        if self.per_second <= 0:
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(self.per_second, self.burst, self.burst)
        if not bucket.take():
            raise RateLimited(
                f"Too many changes from this token (limit {self.per_second:g}/s, bursts of "
                f"{self.burst}). Wait a moment and retry with the same idempotencyKey."
            )


def client_key(caller: Caller | None, scope: Mapping[str, Any] | None) -> str:
    """An authenticated session, or else the client's address."""
    if caller is not None:
        return f"s:{caller.session_id}"
    client = (scope or {}).get("client") or ("unknown", 0)
    return f"a:{client[0]}"


def token_key(token: str | None, scope: Mapping[str, Any] | None) -> str:
    """For counting connections before authentication: a hash of the token (never the token
    itself, so it cannot leak through a dump), or the client's address."""
    if token:
        return "t:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    client = (scope or {}).get("client") or ("unknown", 0)
    return f"a:{client[0]}"


def _json_error(message: str, code: ErrorCode) -> bytes:
    return json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()


class BodyLimit:
    """Refuse HTTP request bodies over the limit before anything parses them (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = _json_error(
            f"Request body over {self.max_bytes} bytes. Send less (message content is limited "
            "too; put large material in the repository and refer to it).",
            ErrorCode.BAD_USER_INPUT,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class WebSocketLimits:
    """Close websockets that send oversized frames (1009), and refuse more than
    `max_per_token` concurrent connections for one token (4429). The token is read from
    `connection_init`, the first message of both subprotocols."""

    def __init__(self, app: ASGIApp, max_message_bytes: int, max_per_token: int) -> None:
        self.app = app
        self.max_message_bytes = max_message_bytes
        self.connections = ConnectionCounter(max_per_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        held: str | None = None
        closed = False

        async def close(code: int, reason: str) -> Message:
            nonlocal closed
            closed = True
            await send({"type": "websocket.close", "code": code, "reason": reason})
            return {"type": "websocket.disconnect", "code": code}

        async def guarded_receive() -> Message:
            nonlocal held
            message = await receive()
            if message["type"] != "websocket.receive" or closed:
                return message
            text = message.get("text") or ""
            size = len(text) + len(message.get("bytes") or b"")
            if size > self.max_message_bytes:
                return await close(1009, "message too big")
            init = _connection_init(text) if held is None else None
            if init is not None:
                key = token_key(_init_token(init), scope)
                if not self.connections.acquire(key):
                    return await close(4429, "too many connections for this token")
                held = key
            return message

        try:
            await self.app(scope, guarded_receive, send)
        finally:
            if held is not None:
                self.connections.release(held)


def _connection_init(text: str) -> dict[str, Any] | None:
    """The message, if it is a connection_init (parsed, so no spelling of it slips past)."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "connection_init":
        return message
    return None


def _init_token(message: dict[str, Any]) -> str | None:
    payload = message.get("payload") or {}
    if not isinstance(payload, dict):
        return None
    value = payload.get("authorization") or payload.get("Authorization")
    return bearer_token(value) if isinstance(value, str) else None


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class ConnectionCounter:
    """Open websocket connections per token, in this process."""

    def __init__(self, max_per_token: int) -> None:
        self.max_per_token = max_per_token
        self._open: dict[str, int] = defaultdict(int)

    def acquire(self, key: str) -> bool:
        if self._open[key] >= self.max_per_token:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    @property
    def total(self) -> int:
        return sum(self._open.values())
