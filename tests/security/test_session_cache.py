"""Authentication is served from each process's session cache, and a change to a session
reaches every process's cache: revoking on one process refuses the token's next request on
another, and so does a change made straight in the database (the sessions_changed trigger)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.security.common import ME, REVOKE, agent_token, call, new_room, new_user, ok
from tests.security.conftest import Spawn
from tests.support import dbutil


def _session_reads(log: Path) -> int:
    """Authentication queries the server sent so far (its CHATROOM_STATEMENT_LOG)."""
    return sum("FROM sessions" in line for line in log.read_text().splitlines())


async def test_a_revocation_on_one_process_refuses_the_cached_token_on_another(
    spawn: Spawn, db_url: str, tmp_path: Path
) -> None:
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = await spawn(db_url, {"CHATROOM_STATEMENT_LOG": str(log_a)})
    b = await spawn(db_url, {"CHATROOM_STATEMENT_LOG": str(log_b)})
    owner, _ = await new_user(a, "owner")
    room = (await new_room(a, owner))["id"]
    token, session = await agent_token(a, owner, room, "builder")

    # Both processes authenticate the token once, then serve it from their cache.
    for server, log in ((a, log_a), (b, log_b)):
        assert (await call(server, token, ME)).ok
        reads = _session_reads(log)
        for _ in range(3):
            assert (await call(server, token, ME)).ok
        assert _session_reads(log) == reads, "a cached token was authenticated again"

    # Revoked through process A: B refuses its very next request.
    await ok(a, owner, REVOKE, id=session)
    assert (await call(b, token, ME)).code == "UNAUTHENTICATED"
    assert (await call(a, token, ME)).code == "UNAUTHENTICATED"
    assert (await call(b, owner, ME)).ok, "the owner's own session was dropped too"


async def test_a_session_changed_in_the_database_is_refused_by_every_process(
    spawn: Spawn, db_url: str
) -> None:
    a = await spawn(db_url)
    b = await spawn(db_url)
    owner, _ = await new_user(a, "owner")
    room = (await new_room(a, owner))["id"]
    token, session = await agent_token(a, owner, room, "reviewer")
    for server in (a, b):
        assert (await call(server, token, ME)).ok
        assert (await call(server, token, ME)).ok

    await dbutil.execute(
        db_url, "UPDATE sessions SET revoked_at = now() WHERE id = $1", uuid.UUID(session)
    )
    # The trigger's notification reaches each listener right after the commit; the budget a
    # revoked token has on a process is that delivery, so poll briefly on the fence (the
    # answer), never longer than a second.
    deadline = time.monotonic() + 1.0
    for server in (a, b):
        while (await call(server, token, ME)).code != "UNAUTHENTICATED":
            assert time.monotonic() < deadline, "a token revoked in the database is still accepted"
