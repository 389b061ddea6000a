"""The slot invariants hold in the database itself, whatever the code does: one slot per
(room, role), and only known harnesses, desired states and states."""

from __future__ import annotations

import uuid

import pytest

from tests.support import dbutil
from tests.support.pg import PgDatabase

SLOT = (
    "INSERT INTO agent_slots (id, chatroom_id, role, machine_id, harness, workdir, fresh_session,"
    " desired_state, generation, state, updated_at)"
    " VALUES (gen_random_uuid(), $1, $2, $3, $4, '/w', false, $5, 1, $6, now())"
)


async def test_one_slot_per_room_and_role_and_known_values(db: PgDatabase) -> None:
    user, room, machine = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await dbutil.execute(db.url, "INSERT INTO users VALUES ($1, 'u', now())", user)
    await dbutil.execute(
        db.url,
        "INSERT INTO chatrooms (id, owner_id, name, status, team_id, team_name, team_roles,"
        " entry_point, next_queue_position, last_message_seq, last_event_seq, created_at,"
        " updated_at) VALUES ($1, $2, 'r', 'active', 'pair', 'Pair',"
        " ARRAY['builder', 'reviewer'], 'builder', 0, 0, 0, now(), now())",
        room,
        user,
    )
    await dbutil.execute(
        db.url,
        "INSERT INTO machines VALUES ($1, $2, 'm', '[]', NULL, now(), now())",
        machine,
        user,
    )
    await dbutil.execute(db.url, SLOT, room, "builder", machine, "claude", "running", "stopped")
    with pytest.raises(Exception, match="uq_agent_slots_chatroom_id_role"):
        await dbutil.execute(db.url, SLOT, room, "builder", machine, "codex", "running", "stopped")
    for harness, desired, state, constraint in (
        ("gemini", "running", "stopped", "ck_agent_slots_harness"),
        ("claude", "paused", "stopped", "ck_agent_slots_desired_state"),
        ("claude", "running", "dancing", "ck_agent_slots_state"),
    ):
        with pytest.raises(Exception, match=constraint):
            await dbutil.execute(db.url, SLOT, room, "reviewer", machine, harness, desired, state)
    with pytest.raises(Exception, match="ck_room_events_kind"):
        await dbutil.execute(
            db.url, "INSERT INTO room_events VALUES ($1, 1, 'agent_exploded', '{}', now())", room
        )
    await dbutil.execute(
        db.url, "INSERT INTO room_events VALUES ($1, 1, 'agent_updated', '{}', now())", room
    )
