"""A server that ran before accounts and members (revision 0004) upgrades in place: its guests
keep their tokens and rooms, and the rooms can then be shared (SPEC §12, migration 0005).

tests/db/test_migrations.py checks the rows survive 0003 -> head at the SQL level; this test
drives the upgraded database through the real server: the old guest token still works, the
guest becomes an account, invites a member, and both see the room. Going back down to 0004
drops the accounts and members but keeps every room."""

from __future__ import annotations

import hashlib
import uuid

from alembic import command

from chatroom.db.migrate import alembic_config
from tests.accounts import passwords
from tests.accounts.test_members import ACCEPT, INVITE, LIST, MEMBERS
from tests.db.test_migrations import alembic
from tests.support import dbutil
from tests.support.gql_client import post_graphql

UPGRADE = """mutation($u: String!, $p: String!) {
  upgradeGuest(input: {username: $u, password: $p}) { id } }"""
PASSWORD = passwords.UPGRADE


async def test_guest_rooms_upgrade_and_can_be_shared(fresh_db, start_server) -> None:
    db = await fresh_db()
    config = alembic_config(db.url)
    await alembic(command.downgrade, config, "0004")
    # Two guests of the old server, each with a room and a token it still holds.
    tokens = {f"chr_old_guest_token_{n}_{'x' * 24}": uuid.uuid4() for n in range(2)}
    rooms = {}
    for token, user_id in tokens.items():
        rooms[token] = uuid.uuid4()
        await dbutil.execute(
            db.url,
            "INSERT INTO users (id, display_name, created_at) VALUES ($1, 'g', now())",
            user_id,
        )
        await dbutil.execute(
            db.url,
            "INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at,"
            " expires_at) VALUES ($1, $2, $3, now(), now(), now() + interval '1 day')",
            uuid.uuid4(),
            user_id,
            hashlib.sha256(token.encode()).hexdigest(),
        )
        await dbutil.execute(
            db.url,
            "INSERT INTO chatrooms (id, owner_id, name, status, team_id, team_name, team_roles,"
            " entry_point, next_queue_position, last_message_seq, last_event_seq, created_at,"
            " updated_at) VALUES ($1, $2, 'old room', 'active', 'pair', 'Pair',"
            " ARRAY['builder', 'reviewer'], 'builder', 0, 0, 0, now(), now())",
            rooms[token],
            user_id,
        )
    await alembic(command.upgrade, config, "head")

    server = await start_server(db.url)
    owner, other = list(tokens)
    room = str(rooms[owner])
    listed = await post_graphql(server, LIST, token=owner)
    assert [r["id"] for r in listed["data"]["chatrooms"]] == [room]
    upgraded = await post_graphql(server, UPGRADE, {"u": "old-guest", "p": PASSWORD}, token=owner)
    assert upgraded["data"]["upgradeGuest"]["id"] == str(tokens[owner])

    made = await post_graphql(server, INVITE, {"r": room, "role": "MEMBER"}, token=owner)
    code = made["data"]["createRoomInvite"]["code"]
    assert (await post_graphql(server, ACCEPT, {"c": code}, token=other))["data"]
    seen = await post_graphql(server, LIST, token=other)
    assert sorted(r["id"] for r in seen["data"]["chatrooms"]) == sorted(
        str(r) for r in rooms.values()
    )
    people = await post_graphql(server, MEMBERS, {"r": room}, token=other)
    assert [m["role"] for m in people["data"]["roomMembers"]] == ["owner", "member"]
    await server.stop()

    # Back down past accounts and members: every room is still there, with its owner.
    await alembic(command.downgrade, config, "0004")
    kept = await dbutil.fetch(db.url, "SELECT id, owner_id FROM chatrooms ORDER BY id")
    assert sorted((r["id"], r["owner_id"]) for r in kept) == sorted(
        (rooms[t], tokens[t]) for t in tokens
    )
