"""Access checks: which room a caller can see, which role it may act as, and whether the room
takes work. Every resolver asks these before it reads or writes anything."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, exists, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db import driver, hot_sql, rows
from chatroom.db.models import Chatroom, MemberRole, RoomMember, RoomStatus, Task
from chatroom.resolvers import validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, Conflict, Forbidden, NotFound
from chatroom.resolvers.validation import USER_ROLE


def routable_to(task: Task, role: str, entry_point: str) -> bool:
    """Assigned to the role, or unassigned and the role is the room's entry point."""
    return task.assigned_to == role or (task.assigned_to is None and role == entry_point)


async def load_room(
    tx: AsyncSession, caller: Caller, chatroom_id: str, *, lock: bool, steer: bool | None = None
) -> Chatroom:
    """The caller's room: one it owns or is a member of (SPEC §12). Someone else's room
    answers exactly like a missing one.

    `steer` (default: `lock`, since every write takes the lock) asks for the right to act in
    the room: owners and members have it, viewers only read and get FORBIDDEN."""
    steer = lock if steer is None else steer
    room_id = validation.entity_id(chatroom_id, kind="chatroom")
    if caller.scope_chatroom_id is not None and room_id != caller.scope_chatroom_id:
        room_id = uuid.UUID(int=0)  # an agent token sees one room; others look missing
    roles = (MemberRole.MEMBER,) if steer else (MemberRole.MEMBER, MemberRole.VIEWER)
    parameters = {"room_id": room_id, "user_id": caller.user_id, "roles": [r.value for r in roles]}
    query = _ROOM_QUERIES[lock]
    found = await driver.fetchrow(tx, query.sql, *query.args(**parameters))
    room = rows.attached(tx, Chatroom, found, hot_sql.ROOM_COLUMNS) if found else None
    if room is None and steer and await _is_viewer(tx, caller, room_id):
        raise Forbidden(
            "You are a viewer of this chatroom: viewers read, they do not act. Ask its owner "
            "to make you a member (setMemberRole)."
        )
    if room is None:
        raise NotFound(
            f"No chatroom with id {chatroom_id!r} is visible to you. "
            "List yours with the chatrooms query (or `chatroom list`)."
        )
    return room


def require_room_owner(room: Chatroom, caller: Caller) -> None:
    """Renaming or completing a room and managing its people are its owner's alone (members
    steer the work, SPEC §12); an agent token never does them, even the owner's."""
    require_owner(caller)
    if room.owner_id != caller.user_id:
        raise Forbidden(
            "Only the room's owner can do this (rename, complete, invite, change or remove "
            "members); members send, steer the queue and backlog, interrupt and run agents."
        )


def visible_to(
    caller: Caller, roles: tuple[MemberRole, ...] = (MemberRole.MEMBER, MemberRole.VIEWER)
) -> ColumnElement[bool]:
    """Rooms the caller owns or is a member of with one of `roles` (SPEC §12: "owner or
    member" wherever §5 says "owner")."""
    return _visible(caller.user_id, [r.value for r in roles])


def _visible(user_id: Any, roles: Any) -> ColumnElement[bool]:
    return or_(
        col(Chatroom.owner_id) == user_id,
        exists().where(
            col(RoomMember.chatroom_id) == Chatroom.id,
            col(RoomMember.user_id) == user_id,
            col(RoomMember.role) == any_(roles),
        ),
    )


def _room_query(*, lock: bool) -> Any:
    query = select(Chatroom).where(
        Chatroom.id == bindparam("room_id"),
        _visible(bindparam("user_id"), bindparam("roles")),
    )
    return query.with_for_update(of=Chatroom) if lock else query


# Every request loads its room: the statement is compiled once, to a text the driver prepares
# once per connection, so a call only binds its values (building it per call, and SQLAlchemy's
# execution and ORM loading, cost more CPU than PostgreSQL spent running it).
_ROOM_QUERIES = {lock: hot_sql.Compiled(_room_query(lock=lock)) for lock in (True, False)}


async def role_in(tx: AsyncSession, caller: Caller, room_id: uuid.UUID, owner_id: uuid.UUID) -> str:
    """What the caller is in a room it can see: "owner", or its member role ("member",
    "viewer"). An agent token is what the person who minted it is."""
    if caller.user_id == owner_id:
        return "owner"
    query = select(RoomMember.role).where(
        RoomMember.chatroom_id == room_id, RoomMember.user_id == caller.user_id
    )
    role = (await tx.exec(query)).first()
    # Seeing the room at all means owner or member; a row gone meanwhile reads as a viewer's
    # (the least a client may then offer).
    return str(role) if role is not None else MemberRole.VIEWER.value


async def _is_viewer(tx: AsyncSession, caller: Caller, room_id: uuid.UUID) -> bool:
    query = select(RoomMember.id).where(
        RoomMember.chatroom_id == room_id,
        RoomMember.user_id == caller.user_id,
        RoomMember.role == MemberRole.VIEWER.value,
    )
    return (await tx.exec(query)).first() is not None


def team_role(room: Chatroom, value: str, *, field: str = "role", allow_user: bool = False) -> str:
    role = validation.role(value, field=field)
    if role in room.team_roles or (allow_user and role == USER_ROLE):
        return role
    allowed = [*room.team_roles, USER_ROLE] if allow_user else list(room.team_roles)
    raise BadInput(
        f"{field} {role!r} is not in this room's team. Use one of: {', '.join(allowed)}.",
        field=field,
        allowed=allowed,
    )


def acting_role(
    room: Chatroom, caller: Caller, value: str, *, field: str = "role", allow_user: bool = False
) -> str:
    """The role the caller acts as: a team role (or `user`), and the token's own role if the
    token is an agent's."""
    role = team_role(room, value, field=field, allow_user=allow_user)
    if caller.scope_role is not None and role != caller.scope_role:
        raise Forbidden(
            f"This agent token acts only as {caller.scope_role!r}; it cannot act as {role!r}. "
            "Use the token minted for that role, or the room owner's login."
        )
    return role


def refuse_agent(caller: Caller, what: str, instead: str) -> None:
    """What only a person's own login does (`what`, refused with `instead`: who or what may):
    an agent token acts only as its role in its room."""
    if caller.is_agent:
        raise Forbidden(
            f"An agent token can only wait, claim, classify and hand off as its role; it cannot "
            f"{what}. {instead}"
        )


def require_owner(caller: Caller) -> None:
    """Room management and speaking as the user are the owner's, never an agent token's."""
    refuse_agent(caller, "do this", "Ask the room owner to do this.")


def require_open(room: Chatroom) -> None:
    if room.status == RoomStatus.COMPLETED:
        raise Conflict(
            "This chatroom is completed and takes no new work. Create a new room for new work."
        )
