"""sendHandoff and claimTask are all-or-nothing (SPEC §2.4).

For every named fault checkpoint inside the two mutations we set up a room in the right state,
snapshot every table, run the mutation (with an idempotency key) with the fault armed, and require
the database to be exactly as before. The same call, disarmed and with the same key, must then
succeed normally: the failed attempt left no idempotency record behind.

The checkpoints are found by reading the source, so a new one cannot be forgotten here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.db.models import ParticipantStatus, TaskStatus
from chatroom.db.session import Database
from chatroom.resolvers import auth, faults, handoffs, messages, rooms, tasks
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.faults import InjectedFault
from tests.support.dbutil import snapshot_tables
from tests.support.pg import PgDatabase

PACKAGE = Path(__file__).resolve().parents[2] / "chatroom"
CHECKPOINT_CALL = re.compile(r"\bcheckpoint\(")
CHECKPOINT_NAME = re.compile(r"\bcheckpoint\(\s*[\"']([^\"']+)[\"']\s*\)")


def checkpoints_in_source() -> dict[str, list[str]]:
    """Every `faults.checkpoint("name")` under chatroom/, as name -> [file:line, ...]."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if "def checkpoint" in line or not CHECKPOINT_CALL.search(line):
                continue
            match = CHECKPOINT_NAME.search(line)
            where = f"{path.relative_to(PACKAGE.parent)}:{lineno}"
            # A computed name could not be armed by name from a test: refuse it.
            assert match, f"{where}: checkpoint() needs a literal name: {line.strip()}"
            found.setdefault(match.group(1), []).append(where)
    return found


CHECKPOINTS = checkpoints_in_source()

# Which scenarios reach the checkpoints of each mutation (by name prefix).
SCENARIOS_BY_PREFIX = {
    "handoff": ("handoff_to_agent", "handoff_to_user"),
    "claim": ("claim",),
}


def _cases() -> list[Any]:
    cases = []
    for name in sorted(CHECKPOINTS):
        prefix = name.split(".", 1)[0]
        for scenario in SCENARIOS_BY_PREFIX.get(prefix, ("unknown",)):
            cases.append(pytest.param(scenario, name, id=f"{scenario}-{name}"))
    return cases


def test_checkpoints_are_found_and_known() -> None:
    expected = {
        "handoff.checked",
        "handoff.completed",
        "handoff.message",
        "handoff.task",
        "handoff.participant",
        "handoff.recorded",
        "claim.started",
        "claim.message",
        "claim.participant",
        "claim.recorded",
    }
    assert expected <= set(CHECKPOINTS), f"checkpoints missing from the source: {CHECKPOINTS}"
    duplicated = {n: w for n, w in CHECKPOINTS.items() if len(w) > 1}
    assert not duplicated, f"a checkpoint name must be unique: {duplicated}"
    unknown = sorted(n for n in CHECKPOINTS if n.split(".", 1)[0] not in SCENARIOS_BY_PREFIX)
    assert not unknown, (
        f"new checkpoints {unknown}: add a scenario that reaches them to SCENARIOS_BY_PREFIX"
    )


# --- driving the resolvers the way the GraphQL layer does ------------------------------------


class Api:
    """Each call: one transaction, `auth.authenticate`, then the resolver (schema/session.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.db = Database(engine)
        self.token = ""

    async def sign_up(self) -> None:
        async with self.db.transaction() as tx:
            self.token, _user = await auth.create_guest_session(tx, display_name="Atomic")

    async def call(self, resolver: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        async with self.db.transaction() as tx:
            caller: Caller = await auth.authenticate(tx, self.token)
            return await resolver(tx, caller, **kwargs)


@dataclass
class Prepared:
    """A room in the state a scenario needs, and the mutation to run (with its key)."""

    run: Callable[[], Awaitable[Any]]
    check_success: Callable[[Any], None]


async def _room_with_builder_working(api: Api, *, queued: int = 0) -> tuple[str, str]:
    """A pair room where builder holds the task made from a user request; `queued` more
    requests wait behind it. Returns (room id, in-progress task id)."""
    room = await api.call(
        rooms.create_chatroom,
        team_id="pair",
        name="atomic",
        roles=None,
        entry_point=None,
        idempotency_key=None,
    )
    room_id = str(room.id)
    sent = await api.call(messages.send_message, chatroom_id=room_id, content="Build it")
    assert sent.task is not None and sent.task.status == TaskStatus.PENDING
    task_id = str(sent.task.id)
    claimed = await api.call(tasks.claim_task, chatroom_id=room_id, task_id=task_id, role="builder")
    assert claimed.success
    for n in range(queued):
        later = await api.call(messages.send_message, chatroom_id=room_id, content=f"Later {n}")
        assert later.task is not None and later.task.status == TaskStatus.QUEUED
    return room_id, task_id


async def prepare_handoff_to_agent(api: Api, key: str) -> Prepared:
    room_id, task_id = await _room_with_builder_working(api, queued=1)

    async def run() -> handoffs.HandoffOutcome:
        return await api.call(
            handoffs.send_handoff,
            chatroom_id=room_id,
            sender_role="builder",
            content="Please review",
            target_role="reviewer",
            idempotency_key=key,
        )

    def check(o: handoffs.HandoffOutcome) -> None:
        assert [str(t.id) for t in o.completed_tasks] == [task_id]
        assert o.completed_tasks[0].status == TaskStatus.COMPLETED
        assert o.message.sender_role == "builder" and o.message.target_role == "reviewer"
        assert o.new_task is not None
        assert (o.new_task.status, o.new_task.assigned_to) == (TaskStatus.PENDING, "reviewer")
        assert o.promoted_task is None  # the baton passed to reviewer: the queue waits
        assert (o.sender.role, o.sender.status) == ("builder", ParticipantStatus.WAITING)

    return Prepared(run, check)


async def prepare_handoff_to_user(api: Api, key: str) -> Prepared:
    room_id, task_id = await _room_with_builder_working(api, queued=2)

    async def run() -> handoffs.HandoffOutcome:
        return await api.call(
            handoffs.send_handoff,
            chatroom_id=room_id,
            sender_role="builder",
            content="Here is your answer",
            target_role="user",
            idempotency_key=key,
        )

    def check(o: handoffs.HandoffOutcome) -> None:
        assert [str(t.id) for t in o.completed_tasks] == [task_id]
        assert o.message.target_role == "user"
        assert o.new_task is None
        assert o.promoted_task is not None, "the oldest queued request must be promoted"
        assert o.promoted_task.status == TaskStatus.PENDING
        assert o.promoted_task.content == "Later 0"
        assert (o.sender.role, o.sender.status) == ("builder", ParticipantStatus.WAITING)

    return Prepared(run, check)


async def prepare_claim(api: Api, key: str) -> Prepared:
    room = await api.call(
        rooms.create_chatroom,
        team_id="pair",
        name="atomic",
        roles=None,
        entry_point=None,
        idempotency_key=None,
    )
    room_id = str(room.id)
    sent = await api.call(messages.send_message, chatroom_id=room_id, content="Do it")
    assert sent.task is not None
    task_id = str(sent.task.id)

    async def run() -> tasks.ClaimOutcome:
        return await api.call(
            tasks.claim_task,
            chatroom_id=room_id,
            task_id=task_id,
            role="builder",
            idempotency_key=key,
        )

    def check(o: tasks.ClaimOutcome) -> None:
        assert o.success is True
        assert str(o.task.id) == task_id
        assert (o.task.status, o.task.assigned_to, o.task.attempt) == (
            TaskStatus.IN_PROGRESS,
            "builder",
            1,
        )
        assert o.message is not None and o.message.claimed_by_role == "builder"
        assert o.participant is not None
        assert o.participant.status == ParticipantStatus.ACTIVE

    return Prepared(run, check)


PREPARE = {
    "handoff_to_agent": prepare_handoff_to_agent,
    "handoff_to_user": prepare_handoff_to_user,
    "claim": prepare_claim,
}


@pytest.mark.parametrize(("scenario", "checkpoint"), _cases())
async def test_fault_leaves_no_trace_and_retry_succeeds(
    scenario: str, checkpoint: str, db: PgDatabase, engine: AsyncEngine
) -> None:
    assert scenario in PREPARE, f"no scenario reaches checkpoint {checkpoint}"
    api = Api(engine)
    await api.sign_up()
    key = f"atomic-{scenario}-{checkpoint}"
    prepared = await PREPARE[scenario](api, key)

    before = await snapshot_tables(db.url)
    with faults.armed(checkpoint), pytest.raises(InjectedFault, match=re.escape(checkpoint)):
        await prepared.run()
    assert await snapshot_tables(db.url) == before, f"a fault at {checkpoint} left a write behind"

    # Same key, disarmed: not a replay of anything (no record survived), a normal success.
    outcome = await prepared.run()
    prepared.check_success(outcome)
    after = await snapshot_tables(db.url)
    assert after != before
    [record] = [r for r in after["idempotency_records"] if key in r]
    assert record is not None

    # And a retry now replays that first result instead of acting twice.
    again = await prepared.run()
    assert again.dump() == outcome.dump()
    assert await snapshot_tables(db.url) == after
