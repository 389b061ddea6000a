"""GraphQL for room members and invite links (SPEC §12)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from chatroom.db import models
from chatroom.resolvers import members
from chatroom.schema import types as t
from chatroom.schema.context import AppInfo
from chatroom.schema.session import in_read, in_transaction


@strawberry.enum
class MemberRole(Enum):
    MEMBER = "member"
    VIEWER = "viewer"


@strawberry.input
class CreateRoomInviteInput:
    chatroom_id: strawberry.ID
    role: MemberRole
    expires_in_seconds: int | None = strawberry.field(
        default=None, description="60 to 2592000 (30 days); default 7 days."
    )
    max_uses: int | None = strawberry.field(default=None, description="1 to 1000; default 1.")


@strawberry.type
class RoomInvite:
    code: str = strawberry.field(description="Shown once: the server keeps only a hash.")
    url: str = strawberry.field(description="The web page that accepts the code.")
    role: MemberRole
    expires_at: datetime


@strawberry.type
class RoomMember:
    user: t.User
    role: str = strawberry.field(description="owner, member or viewer.")


def _role(value: MemberRole) -> models.MemberRole:
    return models.MemberRole(value.value)


def _invite_url(info: AppInfo, code: str) -> str:
    request = info.context.request
    base = str(getattr(request, "base_url", "") or "/")
    return f"{base.rstrip('/')}/#invite={code}"


@strawberry.type
class MembersQuery:
    @strawberry.field(description="The room's owner, members and viewers.")
    async def room_members(self, info: AppInfo, chatroom_id: strawberry.ID) -> list[RoomMember]:
        rows = await in_read(
            info, lambda tx, c: members.room_members(tx, c, chatroom_id=chatroom_id)
        )
        return [RoomMember(user=t.User.of(u), role=r) for u, r in rows]


@strawberry.type
class MembersMutation:
    @strawberry.mutation(description="An invite link to the room with a role (owner only).")
    async def create_room_invite(self, info: AppInfo, input: CreateRoomInviteInput) -> RoomInvite:
        code, invite = await in_transaction(
            info,
            lambda tx, c: members.create_room_invite(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                role=_role(input.role),
                expires_in_seconds=input.expires_in_seconds,
                max_uses=input.max_uses,
            ),
        )
        return RoomInvite(
            code=code,
            url=_invite_url(info, code),
            role=MemberRole(invite.role),
            expires_at=invite.expires_at,
        )

    @strawberry.mutation(description="Join a room with an invite code.")
    async def accept_room_invite(self, info: AppInfo, code: str) -> t.Chatroom:
        room = await in_transaction(
            info, lambda tx, c: members.accept_room_invite(tx, c, code=code)
        )
        return t.Chatroom.of(room)

    @strawberry.mutation(description="Change a member's role (owner only).")
    async def set_member_role(
        self, info: AppInfo, chatroom_id: strawberry.ID, user_id: strawberry.ID, role: MemberRole
    ) -> RoomMember:
        user, new_role = await in_transaction(
            info,
            lambda tx, c: members.set_member_role(
                tx, c, chatroom_id=chatroom_id, user_id=user_id, role=_role(role)
            ),
        )
        return RoomMember(user=t.User.of(user), role=new_role)

    @strawberry.mutation(description="Remove a member or viewer from the room (owner only).")
    async def remove_member(
        self, info: AppInfo, chatroom_id: strawberry.ID, user_id: strawberry.ID
    ) -> bool:
        await in_transaction(
            info,
            lambda tx, c: members.remove_member(tx, c, chatroom_id=chatroom_id, user_id=user_id),
        )
        return True
