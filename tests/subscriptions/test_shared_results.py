"""Results shared by the subscribers of one document (chatroom/schema/shared_results.py): the
same event reaches every subscriber of the document alike, a field that answers per caller
(Chatroom.myRole) still answers each caller, and a variable used below the root field keeps
its subscribers apart. Real server, real websockets, both subprotocols."""

from __future__ import annotations

from tests.subscriptions.common import event, new_room
from tests.support.api import new_user, subscription
from tests.support.gql_client import Subprotocol, post_graphql
from tests.support.pg import PgDatabase

WITH_ROLE = """subscription($c: ID!, $after: Int) {
  roomEvents(chatroomId: $c, afterSeq: $after) { seq kind room { id name myRole } } }"""
# $n is used below the root field: subscribers with different values must not share.
WITH_VARIABLE = """subscription($c: ID!, $after: Int, $n: Boolean!) {
  roomEvents(chatroomId: $c, afterSeq: $after) { seq room @include(if: $n) { name } } }"""
INVITE = """mutation($r: ID!) {
  createRoomInvite(input: {chatroomId: $r, role: VIEWER}) { code } }"""
ACCEPT = "mutation($c: String!) { acceptRoomInvite(code: $c) { id } }"
RENAME = """mutation($r: ID!, $n: String!) {
  renameChatroom(chatroomId: $r, name: $n) { id lastEventSeq } }"""


async def test_one_document_many_callers(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    server = await start_server(db.url)
    owner, room = await new_room(server)
    viewer, _ = await new_user(server, "viewer")
    code = (await post_graphql(server, INVITE, {"r": room}, token=owner))["data"]
    accepted = await post_graphql(
        server, ACCEPT, {"c": code["createRoomInvite"]["code"]}, token=viewer
    )
    assert "errors" not in accepted, accepted
    head = (await post_graphql(server, RENAME, {"r": room, "n": "before"}, token=owner))["data"]
    seq = head["renameChatroom"]["lastEventSeq"]
    async with (
        subscription(server, owner, protocol, WITH_ROLE, c=room, after=seq) as owner_a,
        subscription(server, owner, protocol, WITH_ROLE, c=room, after=seq) as owner_b,
        subscription(server, viewer, protocol, WITH_ROLE, c=room, after=seq) as viewer_a,
        subscription(server, owner, protocol, WITH_VARIABLE, c=room, after=seq, n=True) as named,
        subscription(server, owner, protocol, WITH_VARIABLE, c=room, after=seq, n=False) as other,
    ):
        # Each subscription resumes after `seq`, so the next rename is its first event.
        renamed = await post_graphql(server, RENAME, {"r": room, "n": "after"}, token=owner)
        assert "errors" not in renamed, renamed
        got_a, got_b = await event(owner_a), await event(owner_b)
        assert got_a == got_b
        assert got_a["kind"] == "ROOM_UPDATED"
        assert got_a["room"] == {"id": room, "name": "after", "myRole": "OWNER"}
        seen_by_viewer = await event(viewer_a)
        assert seen_by_viewer["seq"] == got_a["seq"]
        assert seen_by_viewer["room"]["myRole"] == "VIEWER"
        assert await event(named) == {"seq": got_a["seq"], "room": {"name": "after"}}
        assert await event(other) == {"seq": got_a["seq"]}
