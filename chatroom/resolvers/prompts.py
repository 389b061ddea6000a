"""Role guidance (`rolePrompt`): the full text an agent reads once when it joins, or again when
it has lost its context. Deliveries stay short and point here instead of repeating it. The text
itself is rendered by chatroom.guidance, which every client shares."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.agent_commands import Commands
from chatroom.db.models import Chatroom
from chatroom.guidance import Team, role_guidance, targets
from chatroom.resolvers import access
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.teams import role_priority
from chatroom.resolvers.validation import USER_ROLE


@dataclass
class RolePrompt:
    role: str
    prompt: str
    allowed_targets: list[str]
    default_target: str


def allowed_targets(room: Chatroom, role: str) -> list[str]:
    """The targets the guidance names (in role-priority order): every other role, and `user`
    unless the team's coordinator is the only one who reports to the user."""
    named = set(targets(team_of(room), role, None, False))
    others = sorted((r for r in room.team_roles if r != role), key=role_priority)
    return [r for r in [*others, USER_ROLE] if r in named]


def default_target(room: Chatroom, role: str) -> str:
    """The entry point reports to the user; everyone else answers whoever sent the work.
    Without a sender at hand (the prompt is read out of a delivery), the entry point."""
    return USER_ROLE if role == room.entry_point else room.entry_point


async def role_prompt(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> RolePrompt:
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    who = access.acting_role(room, caller, role)
    targets = allowed_targets(room, who)
    # Plain `chatroom` commands: the server does not know how the agent invokes the CLI (the
    # CLI renders the same guidance with the agent's own flags).
    prompt = role_guidance(team_of(room), who, Commands())
    return RolePrompt(who, prompt, targets, default_target(room, who))


def team_of(room: Chatroom) -> Team:
    return Team(
        room_id=str(room.id),
        room_name=room.name,
        team_name=room.team_name,
        roles=tuple(room.team_roles),
        entry_point=room.entry_point,
    )
