"""Room members over the real server: invite links, member and viewer rights, strangers, role
changes and removal take effect on the next request."""

from __future__ import annotations

import time
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.security.common import (
    PROTOCOLS,
    ROOM_EVENTS,
    TASK_AVAILABLE,
    Stream,
    subscription,
)
from tests.support import dbutil
from tests.support.gql_client import post_graphql

GUEST = "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }"
ROOM = 'mutation { createChatroom(input: {name: "shared"}) { id } }'
INVITE = """mutation($r: ID!, $role: MemberRole!, $uses: Int, $exp: Int) {
  createRoomInvite(input: {chatroomId: $r, role: $role, maxUses: $uses, expiresInSeconds: $exp})
  { code url role expiresAt } }"""
ACCEPT = "mutation($c: String!) { acceptRoomInvite(code: $c) { id name } }"
MEMBERS = "query($r: ID!) { roomMembers(chatroomId: $r) { user { id displayName } role } }"
SEND = """mutation($r: ID!) {
  sendMessage(input: {chatroomId: $r, content: "hi"}) { message { id } } }"""
MESSAGES = "query($r: ID!) { chatroom(id: $r) { id name } }"
LIST = "{ chatrooms { id } }"
SET_ROLE = """mutation($r: ID!, $u: ID!, $role: MemberRole!) {
  setMemberRole(chatroomId: $r, userId: $u, role: $role) { user { id } role } }"""
HEAD = "query($r: ID!) { chatroom(id: $r) { lastEventSeq } }"
REMOVE = "mutation($r: ID!, $u: ID!) { removeMember(chatroomId: $r, userId: $u) }"


def code_of(body: dict[str, Any]) -> str | None:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


async def guest(server: Any, name: str) -> tuple[str, str]:
    g = (await post_graphql(server, GUEST, {"n": name}))["data"]["createGuestSession"]
    return g["token"], g["user"]["id"]


async def test_members_viewers_and_strangers(start_server, db_url) -> None:
    server = await start_server(db_url)
    owner, _ = await guest(server, "owner")
    member, member_id = await guest(server, "member")
    viewer, viewer_id = await guest(server, "viewer")
    stranger, _ = await guest(server, "stranger")
    room = (await post_graphql(server, ROOM, token=owner))["data"]["createChatroom"]["id"]

    made = await post_graphql(server, INVITE, {"r": room, "role": "MEMBER"}, token=owner)
    invite = made["data"]["createRoomInvite"]
    assert invite["role"] == "MEMBER" and invite["url"].endswith("#invite=" + invite["code"])
    stored = await dbutil.fetch(db_url, "SELECT code_hash, uses FROM room_invites")
    assert invite["code"] not in {r["code_hash"] for r in stored}
    joined = await post_graphql(server, ACCEPT, {"c": invite["code"]}, token=member)
    assert joined["data"]["acceptRoomInvite"]["id"] == room
    # max uses 1 by default: a second person cannot use it.
    assert code_of(await post_graphql(server, ACCEPT, {"c": invite["code"]}, token=stranger)) == (
        "NOT_FOUND"
    )
    view = await post_graphql(server, INVITE, {"r": room, "role": "VIEWER", "uses": 5}, token=owner)
    await post_graphql(
        server, ACCEPT, {"c": view["data"]["createRoomInvite"]["code"]}, token=viewer
    )

    listed = (await post_graphql(server, MEMBERS, {"r": room}, token=viewer))["data"]
    assert [m["role"] for m in listed["roomMembers"]] == ["owner", "member", "viewer"]

    # A member acts, a viewer reads only, a stranger learns nothing.
    assert (await post_graphql(server, SEND, {"r": room}, token=member))["data"]["sendMessage"]
    refused = await post_graphql(server, SEND, {"r": room}, token=viewer)
    assert code_of(refused) == "FORBIDDEN"
    assert (await post_graphql(server, MESSAGES, {"r": room}, token=viewer))["data"]["chatroom"]
    assert room in [
        r["id"] for r in (await post_graphql(server, LIST, token=member))["data"]["chatrooms"]
    ]
    missing = "00000000-0000-4000-8000-000000000000"
    for query, variables in ((SEND, {"r": room}), (MEMBERS, {"r": room})):
        seen = await post_graphql(server, query, variables, token=stranger)
        gone = await post_graphql(server, query, {"r": missing}, token=stranger)
        assert code_of(seen) == code_of(gone) == "NOT_FOUND"
        assert seen["errors"][0]["message"].replace(room, missing) == gone["errors"][0]["message"]
    assert room not in str(await post_graphql(server, LIST, token=stranger))

    # Only the owner manages members.
    assert (
        code_of(await post_graphql(server, INVITE, {"r": room, "role": "MEMBER"}, token=member))
        == "FORBIDDEN"
    )
    assert (
        code_of(await post_graphql(server, REMOVE, {"r": room, "u": viewer_id}, token=member))
        == "FORBIDDEN"
    )

    # A demotion and a removal hold from the next request.
    demoted = await post_graphql(
        server, SET_ROLE, {"r": room, "u": member_id, "role": "VIEWER"}, token=owner
    )
    assert demoted["data"]["setMemberRole"]["role"] == "viewer"
    assert code_of(await post_graphql(server, SEND, {"r": room}, token=member)) == "FORBIDDEN"
    assert (await post_graphql(server, REMOVE, {"r": room, "u": member_id}, token=owner))["data"][
        "removeMember"
    ] is True
    assert code_of(await post_graphql(server, MESSAGES, {"r": room}, token=member)) == "NOT_FOUND"


async def test_bad_invites_change_nothing(start_server, db_url) -> None:
    server = await start_server(db_url)
    owner, _ = await guest(server, "owner")
    room = (await post_graphql(server, ROOM, token=owner))["data"]["createChatroom"]["id"]
    for bad in ({"uses": 0}, {"uses": 100000}, {"exp": 1}, {"exp": 10**9}):
        body = await post_graphql(server, INVITE, {"r": room, "role": "MEMBER", **bad}, token=owner)
        assert code_of(body) == "BAD_USER_INPUT", body
    assert await dbutil.fetch(db_url, "SELECT 1 FROM room_invites") == []
    made = await post_graphql(server, INVITE, {"r": room, "role": "VIEWER"}, token=owner)
    code = made["data"]["createRoomInvite"]["code"]
    assert code_of(await post_graphql(server, ACCEPT, {"c": code}, token=owner)) == (
        "BAD_USER_INPUT"
    )
    uses = await dbutil.fetch(db_url, "SELECT uses FROM room_invites")
    assert [r["uses"] for r in uses] == [0]


async def _join(server: Any, owner: str, room: str, token: str, role: str = "MEMBER") -> None:
    made = await post_graphql(server, INVITE, {"r": room, "role": role}, token=owner)
    accepted = await post_graphql(
        server, ACCEPT, {"c": made["data"]["createRoomInvite"]["code"]}, token=token
    )
    assert accepted["data"]["acceptRoomInvite"]["id"] == room, accepted


async def _ended_within(stream: Stream, started: float, seconds: float) -> tuple[str, float]:
    """Read the stream up to its end (the fence); (how it ended, when after `started`)."""
    while True:
        kind, value, at = await stream.raw(within=seconds)
        if kind == "item":
            continue  # events committed before the removal
        code = ""
        if isinstance(value, TransportQueryError):
            code = (value.errors or [{}])[0].get("extensions", {}).get("code", "")
        return code or kind, at - started


AGENT = 'mutation($r: ID!) { createAgentToken(chatroomId: $r, role: "builder") { token } }'


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_removed_members_subscriptions_close_within_a_second(
    start_server, db_url, protocol
) -> None:
    """roomEvents of the member and taskAvailable of an agent token the member minted end
    once the owner removes the member: measured from removeMember's answer to each stream's
    end, which the test waits on (no sleep)."""
    server = await start_server(db_url)
    owner, _ = await guest(server, "owner")
    member, member_id = await guest(server, "member")
    room = (await post_graphql(server, ROOM, token=owner))["data"]["createChatroom"]["id"]
    await _join(server, owner, room, member)
    agent = (await post_graphql(server, AGENT, {"r": room}, token=member))["data"]
    agent_token = agent["createAgentToken"]["token"]
    assert (await post_graphql(server, SEND, {"r": room}, token=member))["data"]["sendMessage"]

    async with (
        subscription(server, member, protocol, ROOM_EVENTS, c=room, after=0) as events,
        subscription(server, agent_token, protocol, TASK_AVAILABLE, c=room, r="builder") as work,
    ):
        # Fences: each subscription is live once its first result arrived.
        assert (await events.next())["roomEvents"]["seq"] == 1
        assert (await work.next())["taskAvailable"]["kind"] == "TASK"
        removed = await post_graphql(server, REMOVE, {"r": room, "u": member_id}, token=owner)
        started = time.monotonic()
        assert removed["data"]["removeMember"] is True, removed
        for stream in (events, work):
            how, after = await _ended_within(stream, started, 5.0)
            assert how == "NOT_FOUND", how
            assert after < 1.0, f"closed {after:.3f}s after removeMember"
    # The agent token of the removed member acts no more either.
    assert code_of(await post_graphql(server, SEND, {"r": room}, token=agent_token)) == (
        "NOT_FOUND"
    )


async def test_a_demoted_member_keeps_reading_but_stops_waiting(start_server, db_url) -> None:
    server = await start_server(db_url)
    owner, _ = await guest(server, "owner")
    member, member_id = await guest(server, "member")
    room = (await post_graphql(server, ROOM, token=owner))["data"]["createChatroom"]["id"]
    await _join(server, owner, room, member)
    await post_graphql(server, SEND, {"r": room}, token=owner)
    protocol = PROTOCOLS[0]
    async with (
        subscription(server, member, protocol, ROOM_EVENTS, c=room, after=0) as events,
        subscription(server, member, protocol, TASK_AVAILABLE, c=room, r="builder") as work,
    ):
        assert (await work.next())["taskAvailable"]["kind"] == "TASK"
        head = await post_graphql(server, HEAD, {"r": room}, token=owner)
        before = head["data"]["chatroom"]["lastEventSeq"]
        demoted = await post_graphql(
            server, SET_ROLE, {"r": room, "u": member_id, "role": "VIEWER"}, token=owner
        )
        started = time.monotonic()
        assert demoted["data"]["setMemberRole"]["role"] == "viewer"
        how, after = await _ended_within(work, started, 5.0)
        assert how == "FORBIDDEN" and after < 1.0, (how, after)
        # The log stream goes on: it delivers the demotion's ROOM_UPDATED and stays open.
        kind, seq = "", 0
        while not (kind == "ROOM_UPDATED" and seq > before):
            event = (await events.next())["roomEvents"]
            kind, seq = event["kind"], event["seq"]
    refused = await post_graphql(server, SEND, {"r": room}, token=member)
    assert code_of(refused) == "FORBIDDEN"


MY_ROLE = "query($r: ID!) { chatroom(id: $r) { myRole } chatrooms { id myRole } }"
AGENT_TOKEN = """mutation($r: ID!) {
  createAgentToken(chatroomId: $r, role: "builder") { token } }"""


async def test_my_role_says_what_each_caller_is(start_server, db_url) -> None:
    """Chatroom.myRole: clients show the owner's controls (rename, complete, people) only to
    the owner; an agent token is what the person who minted it is."""
    server = await start_server(db_url)
    owner, _ = await guest(server, "owner")
    member, member_id = await guest(server, "member")
    viewer, _ = await guest(server, "viewer")
    room = (await post_graphql(server, ROOM, token=owner))["data"]["createChatroom"]["id"]
    for token, role in ((member, "MEMBER"), (viewer, "VIEWER")):
        made = await post_graphql(server, INVITE, {"r": room, "role": role}, token=owner)
        code = made["data"]["createRoomInvite"]["code"]
        assert "errors" not in await post_graphql(server, ACCEPT, {"c": code}, token=token)
    agent = (await post_graphql(server, AGENT_TOKEN, {"r": room}, token=member))["data"]
    for token, expected in (
        (owner, "OWNER"),
        (member, "MEMBER"),
        (viewer, "VIEWER"),
        (agent["createAgentToken"]["token"], "MEMBER"),
    ):
        data = (await post_graphql(server, MY_ROLE, {"r": room}, token=token))["data"]
        assert data["chatroom"]["myRole"] == expected
        assert data["chatrooms"] == [{"id": room, "myRole": expected}]
    demoted = await post_graphql(
        server, SET_ROLE, {"r": room, "u": member_id, "role": "VIEWER"}, token=owner
    )
    assert "errors" not in demoted
    data = (await post_graphql(server, MY_ROLE, {"r": room}, token=member))["data"]
    assert data["chatroom"]["myRole"] == "VIEWER"
