"""Role guidance (`rolePrompt`): the full text an agent reads once when it joins, or again when
it has lost its context. Deliveries stay short and point here instead of repeating it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Chatroom
from chatroom.resolvers import access
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.handoffs import REVIEWER_ROLE
from chatroom.resolvers.teams import role_priority
from chatroom.resolvers.validation import USER_ROLE

DUTIES: dict[str, str] = {
    "manager": (
        "You own the user's request from start to finish. Work out what is wanted, split it "
        "into steps, hand each step to the specialist who should do it, and check the result "
        "against the request before you report back to the user."
    ),
    "architect": (
        "You decide how the change should be built: where it lives, which interfaces change, "
        "what could go wrong. Hand a concrete plan to the builder; do not write the code."
    ),
    "builder": (
        "You make the change: write the code and its tests, run them, and fix what fails. Hand "
        "off with what you changed, how you verified it, and anything left open."
    ),
    "frontend-designer": (
        "You own what people see: layout, states, accessibility, copy. Build or adjust the UI "
        "and hand off with screenshots or steps to see it."
    ),
    "reviewer": (
        "You check the work before it reaches the user: read the change, run the tests, try "
        "the edge cases. Hand it back to the sender with concrete findings, or on to the user "
        "with a short summary when it is right."
    ),
    "tester": (
        "You prove the change works: exercise it as a user would, write the missing tests, and "
        "report exactly what passed and what failed."
    ),
}
GENERIC_DUTY = (
    "Do the part of the work the message asks of your role, then hand off with a message that "
    "stands on its own: the recipient sees only that text."
)


@dataclass
class RolePrompt:
    role: str
    prompt: str
    allowed_targets: list[str]
    default_target: str


def allowed_targets(room: Chatroom, role: str) -> list[str]:
    others = sorted((r for r in room.team_roles if r != role), key=role_priority)
    return [*others, USER_ROLE]


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
    return RolePrompt(who, render(room, who, targets), targets, default_target(room, who))


def render(room: Chatroom, role: str, targets: list[str]) -> str:
    rid = str(room.id)
    wait = f'chatroom wait-for-message "{rid}" --role="{role}"'
    lines = [
        f"# You are the {role} of the {room.team_name} team in chatroom {room.name!r}",
        "",
        DUTIES.get(role, GENERIC_DUTY),
        "",
        f"Team, in order: {', '.join(room.team_roles)}. The human is `user`.",
        "",
        "## How work reaches you",
        "",
        "Work arrives one task at a time. Your loop has two commands and never ends on its own:",
        "",
        f"1. `{wait}` blocks until a task for you arrives, claims it, and prints it.",
        f'2. Do the work, then hand off with `chatroom task-complete "{rid}" --role="{role}" '
        '--next-role="<target>"` and the message on stdin. Handing off ends the task, not '
        "your session: run the wait command again right away, in the foreground.",
        "",
        "Only the handoff message reaches the next role. Put everything they need in it: what "
        "you did, how you checked it, what is left.",
        "",
        f"You may hand off to: {', '.join(targets)}.",
    ]
    if role == room.entry_point:
        lines += [
            "",
            "## Classify each request from the user",
            "",
            "When you take a request straight from the user, classify it once:",
            f'`chatroom task-started "{rid}" --role="{role}" --classification=<kind>` with '
            "question (answer it directly), new_feature (something gets built) or follow_up "
            "(it continues the previous request and keeps its rules).",
        ]
    if REVIEWER_ROLE in room.team_roles:
        lines += [
            "",
            "## Review before the user",
            "",
            f"A new feature (or a follow-up of one) goes back to the user only after the "
            f"{REVIEWER_ROLE} has completed a task in that chain. A question may go straight back.",
        ]
    lines += [
        "",
        "## If something goes wrong",
        "",
        f'- Lost your context? `chatroom prompt "{rid}" --role="{role}"` prints this again.',
        f"- Restarted mid-task? `{wait}` gives you your unfinished task back, marked resumed.",
        "- A refused handoff changes nothing: read the reason, fix the target, and run it again.",
    ]
    return "\n".join(lines)
