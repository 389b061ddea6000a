"""Built-in team templates and role priority (SPEC §2.2). One definition, served to every client."""

from __future__ import annotations

from dataclasses import dataclass

from chatroom.resolvers.validation import USER_ROLE


@dataclass(frozen=True)
class TeamTemplate:
    id: str
    name: str
    roles: tuple[str, ...]
    entry_point: str
    description: str


TEMPLATES: dict[str, TeamTemplate] = {
    t.id: t
    for t in (
        TeamTemplate(
            id="pair",
            name="Pair",
            roles=("builder", "reviewer"),
            entry_point="builder",
            description="A builder who does the work and a reviewer who checks it.",
        ),
        TeamTemplate(
            id="squad",
            name="Squad",
            roles=("manager", "architect", "builder", "frontend-designer", "reviewer", "tester"),
            entry_point="manager",
            description="A full team: the manager plans and routes, specialists build and verify.",
        ),
        TeamTemplate(
            id="duo",
            name="Duo",
            roles=("planner", "builder"),
            entry_point="planner",
            description="A planner who talks to the user, plans and reviews, and a builder.",
        ),
        TeamTemplate(
            id="solo",
            name="Solo",
            roles=("solo",),
            entry_point="solo",
            description="One agent that takes the user's requests and answers them itself.",
        ),
    )
}

CUSTOM_TEAM_ID = "custom"

_PRIORITY = {
    "manager": 1,
    "planner": 1,
    "architect": 2,
    "builder": 3,
    "frontend-designer": 4,
    "reviewer": 5,
    "tester": 6,
    USER_ROLE: 999,
}


def role_priority(role: str) -> int:
    """Lower first when ordering lists of roles."""
    return _PRIORITY.get(role, 100)
