"""Revoking a token ends what it has open (SPEC §5: "a revoked token closes its open
subscriptions"), on both websocket subprotocols, within one second; the token is then refused
everywhere; logging out revokes only the session that logs out."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.security.common import (
    PROTOCOLS,
    REVOKE,
    ROOM_EVENTS,
    SEND,
    SESSIONS,
    TASK_AVAILABLE,
    Stream,
    StreamEnded,
    agent_token,
    call,
    current_session,
    device_login,
    new_room,
    new_user,
    ok,
    subscribe_first,
    subscription,
)
from tests.support import dbutil
from tests.support.gql_client import Subprotocol
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

Kind = Literal["roomEvents", "taskAvailable"]
How = Literal["logout", "by_id"]
BUDGET = 1.0  # seconds from the revoke mutation's response to the subscription's end


async def ended(stream: Stream, since: float) -> tuple[str, float]:
    """Wait for the stream to end; ("error:<code>" | "complete", seconds since `since`)."""
    while True:
        try:
            item = await stream.next(within=10.0)
        except StreamEnded:
            return "complete", stream.last_at - since
        except TransportQueryError as exc:
            first = (exc.errors or [{}])[0]
            code = (first.get("extensions") or {}).get("code")
            return f"error:{code}", stream.last_at - since
        except TimeoutError:
            raise AssertionError("the subscription is still open 10 s after revocation") from None
        raise AssertionError(f"a revoked token's subscription delivered {item!r}")


@asynccontextmanager
async def established(
    server: LiveServer, owner: str, token: str, protocol: Subprotocol, kind: Kind, room: str
) -> AsyncIterator[Stream]:
    """A subscription of `token` that has certainly started (it delivered something)."""
    if kind == "roomEvents":
        async with subscription(server, token, protocol, ROOM_EVENTS, c=room, after=0) as s:
            assert (await s.next())["roomEvents"]["seq"] == 1
            yield s
        return
    await ok(server, owner, SEND, input={"chatroomId": room, "content": "work"})
    async with subscription(server, token, protocol, TASK_AVAILABLE, c=room, r="builder") as s:
        assert (await s.next())["taskAvailable"]["kind"] == "TASK"
        yield s


@pytest.mark.parametrize("how", ["logout", "by_id"])
@pytest.mark.parametrize("kind", ["roomEvents", "taskAvailable"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_revocation_ends_open_subscriptions_within_a_second(
    server: LiveServer, protocol: Subprotocol, kind: Kind, how: How
) -> None:
    owner, _ = await new_user(server, "owner")
    room = (await new_room(server, owner))["id"]
    if how == "logout":  # the CLI's token logs itself out
        token, _ = await device_login(server, owner, "cli")
        session = await current_session(server, token)
    else:  # the owner revokes an agent token by its id
        token, session = await agent_token(server, owner, room, "builder")

    async with established(server, owner, token, protocol, kind, room) as stream:
        revoked = await ok(
            server,
            token if how == "logout" else owner,
            REVOKE,
            id=None if how == "logout" else session,
        )
        since = time.monotonic()
        assert revoked["id"] == session and revoked["revokedAt"]
        outcome, seconds = await ended(stream, since)

    assert outcome in ("error:UNAUTHENTICATED", "complete"), outcome
    assert seconds < BUDGET, f"the subscription ended {seconds:.3f}s after revocation"

    # The token is refused from now on: HTTP, and new subscriptions of either kind.
    me = await call(server, token, "query { me { id } }")
    assert me.code == "UNAUTHENTICATED", me
    for doc, variables in (
        (ROOM_EVENTS, {"c": room, "after": 0}),
        (TASK_AVAILABLE, {"c": room, "r": "builder"}),
    ):
        again = await subscribe_first(server, token, doc, protocol=protocol, **variables)
        assert again.code == "UNAUTHENTICATED", again


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_ends_when_its_token_expires(
    server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    """No revocation needed: a session that reaches its expiry mid-stream is refused too."""
    owner, _ = await new_user(server, "owner")
    room = (await new_room(server, owner))["id"]
    token, session = await agent_token(server, owner, room, "builder")
    await dbutil.execute(
        module_db.url,
        "UPDATE sessions SET expires_at = now() + interval '2 seconds' WHERE id = $1",
        uuid.UUID(session),
    )
    async with established(server, owner, token, protocol, "roomEvents", room) as stream:
        expires = await dbutil.fetchval(
            module_db.url,
            "SELECT extract(epoch FROM expires_at - now()) FROM sessions WHERE id = $1",
            uuid.UUID(session),
        )
        since = time.monotonic() + float(expires)
        outcome, seconds = await ended(stream, since)
    assert outcome in ("error:UNAUTHENTICATED", "complete"), outcome
    assert seconds < BUDGET, f"ended {seconds:.3f}s after the session expired"


async def test_logout_revokes_only_the_current_session(server: LiveServer) -> None:
    web, _ = await new_user(server, "owner")
    room = (await new_room(server, web))["id"]
    cli, _ = await device_login(server, web, "cli")
    agent, agent_session = await agent_token(server, web, room, "builder")
    web_session = await current_session(server, web)
    cli_session = await current_session(server, cli)
    assert len({web_session, cli_session, agent_session}) == 3

    out = await ok(server, cli, REVOKE)
    assert out["id"] == cli_session

    assert (await call(server, cli, "query { me { id } }")).code == "UNAUTHENTICATED"
    assert (await call(server, web, "query { me { id } }")).ok
    assert (await call(server, agent, "query { me { id } }")).ok
    sessions = {s["id"]: s for s in await ok(server, web, SESSIONS)}
    assert sessions[cli_session]["revokedAt"] is not None
    assert sessions[web_session]["revokedAt"] is None and sessions[web_session]["current"]
    assert sessions[agent_session]["revokedAt"] is None

    # Revoking twice is harmless, and a revoked session cannot be revived by using it.
    again = await ok(server, web, REVOKE, id=cli_session)
    assert again["revokedAt"] == sessions[cli_session]["revokedAt"]
    assert (await call(server, cli, REVOKE)).code == "UNAUTHENTICATED"


async def test_the_owner_can_revoke_an_agent_token_but_an_agent_cannot_revoke_others(
    server: LiveServer,
) -> None:
    owner, _ = await new_user(server, "owner")
    room = (await new_room(server, owner))["id"]
    builder, builder_session = await agent_token(server, owner, room, "builder")
    reviewer, reviewer_session = await agent_token(server, owner, room, "reviewer")
    owner_session = await current_session(server, owner)

    for target in (owner_session, reviewer_session):
        refused = await call(server, builder, REVOKE, id=target)
        assert refused.code == "FORBIDDEN", refused
    assert (await call(server, reviewer, "query { me { id } }")).ok
    assert (await call(server, owner, "query { me { id } }")).ok

    await ok(server, owner, REVOKE, id=builder_session)
    assert (await call(server, builder, "query { me { id } }")).code == "UNAUTHENTICATED"
    assert (await call(server, reviewer, "query { me { id } }")).ok


async def test_an_empty_session_id_is_not_a_logout(server: LiveServer) -> None:
    """revokeSession(sessionId: "") names no session: it must not fall back to "this one"
    (only a missing id means log out). A client that sends an unset field as "" would
    otherwise log its user out."""
    token, _ = await new_user(server)
    out = await call(server, token, REVOKE, id="")
    assert out.code == "NOT_FOUND", out
    assert (await call(server, token, "query { me { id } }")).ok, "the caller was logged out"
