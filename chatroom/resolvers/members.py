"""Room members and invite links (SPEC §12). Only the room's owner (signed in, not an agent
token) manages members; a member acts in the room, a viewer only reads.

Every change of who is in a room appends a ROOM_UPDATED event: it wakes the room's open
subscriptions, which then re-check their caller's access (chatroom/schema/subscription.py), so
a removed member's subscriptions end within moments, on every server process."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Chatroom, MemberRole, RoomInvite, RoomMember, User, utcnow
from chatroom.resolvers import access, agents, validation, writers
from chatroom.resolvers.accounts import code_hash
from chatroom.resolvers.auth import Caller, hash_token
from chatroom.resolvers.errors import BadInput, NotFound

INVITE_PREFIX = "chi_"
DEFAULT_INVITE_LIFETIME = timedelta(days=7)
MAX_INVITE_LIFETIME = timedelta(days=30)
MAX_INVITE_USES = 1000


async def owned_room(
    tx: AsyncSession, caller: Caller, chatroom_id: str, *, lock: bool = False
) -> Chatroom:
    """The room, if the caller owns it; members and viewers are refused, strangers see a
    missing room."""
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=lock, steer=False)
    access.require_room_owner(room, caller)
    return room


async def create_room_invite(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    role: MemberRole,
    expires_in_seconds: int | None,
    max_uses: int | None,
) -> tuple[str, RoomInvite]:
    room = await owned_room(tx, caller, chatroom_id)
    lifetime = (
        DEFAULT_INVITE_LIFETIME
        if expires_in_seconds is None
        else timedelta(seconds=expires_in_seconds)
    )
    if not timedelta(seconds=60) <= lifetime <= MAX_INVITE_LIFETIME:
        raise BadInput(
            f"expiresInSeconds is 60 to {int(MAX_INVITE_LIFETIME.total_seconds())}.",
            field="expiresInSeconds",
        )
    uses = 1 if max_uses is None else max_uses
    if not 1 <= uses <= MAX_INVITE_USES:
        raise BadInput(f"maxUses is 1 to {MAX_INVITE_USES}.", field="maxUses")
    code = INVITE_PREFIX + secrets.token_urlsafe(24)
    invite = RoomInvite(
        chatroom_id=room.id,
        code_hash=hash_token(code),
        role=role.value,
        created_by=caller.user_id,
        expires_at=utcnow() + lifetime,
        max_uses=uses,
    )
    tx.add(invite)
    await tx.flush()
    return code, invite


async def accept_room_invite(tx: AsyncSession, caller: Caller, *, code: str) -> Chatroom:
    """Join the invite's room with its role. Unknown, expired and used-up codes answer alike.
    Accepting again keeps the membership (and its current role) and uses nothing."""
    access.require_owner(caller)
    used = (
        await tx.exec(
            update(RoomInvite)
            .where(
                col(RoomInvite.code_hash) == (code_hash(code) or ""),
                col(RoomInvite.expires_at) > utcnow(),
                col(RoomInvite.uses) < col(RoomInvite.max_uses),
            )
            .values(uses=col(RoomInvite.uses) + 1)
            .returning(col(RoomInvite.chatroom_id), col(RoomInvite.role))
        )
    ).first()
    if used is None:  # also: a code that cannot be one (empty, or not valid Unicode)
        raise NotFound("This invite code is unknown, expired or used up; ask the room's owner.")
    room_id, role = used
    room = (await tx.exec(select(Chatroom).where(Chatroom.id == room_id).with_for_update())).first()
    assert room is not None  # invites cascade with their room
    if room.owner_id == caller.user_id:
        raise BadInput("You own this room already.", field="code")
    existing = (
        await tx.exec(
            select(RoomMember).where(
                RoomMember.chatroom_id == room_id, RoomMember.user_id == caller.user_id
            )
        )
    ).first()
    if existing is not None:
        raise BadInput("You are already in this room; the invite was not used.", field="code")
    tx.add(RoomMember(chatroom_id=room_id, user_id=caller.user_id, role=role))
    await tx.flush()
    await writers.room_updated(tx, room)
    return room


async def room_members(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str
) -> list[tuple[User, str]]:
    """The owner first (role `owner`), then members and viewers by when they joined."""
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    owner = await tx.get(User, room.owner_id)
    rows = (
        await tx.exec(
            select(User, RoomMember.role)
            .join(RoomMember, col(RoomMember.user_id) == User.id)
            .where(RoomMember.chatroom_id == room.id)
            .order_by(col(RoomMember.created_at))
        )
    ).all()
    return ([(owner, "owner")] if owner else []) + [(u, r) for u, r in rows]


async def _membership(tx: AsyncSession, room: Chatroom, user_id: str) -> RoomMember:
    uid = validation.entity_id(user_id, kind="user")
    member = (
        await tx.exec(
            select(RoomMember)
            .where(RoomMember.chatroom_id == room.id, RoomMember.user_id == uid)
            .with_for_update()
        )
    ).first()
    if member is None:
        raise NotFound(
            f"User {user_id!r} is not a member of this room; list them with roomMembers.",
            field="userId",
        )
    return member


async def set_member_role(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, user_id: str, role: MemberRole
) -> tuple[User, str]:
    room = await owned_room(tx, caller, chatroom_id, lock=True)
    member = await _membership(tx, room, user_id)
    member.role = role.value
    tx.add(member)
    await tx.flush()
    await writers.room_updated(tx, room)  # a demoted member's waiters end
    await agents.room_access_changed(tx, room)  # ...and their daemons drop its slots
    user = await tx.get(User, member.user_id)
    assert user is not None
    return user, member.role


async def remove_member(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, user_id: str
) -> uuid.UUID:
    room = await owned_room(tx, caller, chatroom_id, lock=True)
    member = await _membership(tx, room, user_id)
    await tx.delete(member)
    await tx.flush()
    await writers.room_updated(tx, room)  # the removed member's subscriptions end
    await agents.room_access_changed(tx, room)  # ...and their daemons drop its slots
    return member.user_id
