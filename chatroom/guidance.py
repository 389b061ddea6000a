"""Role guidance and the routing it teaches: one renderer for every client (the server's
`rolePrompt`, the CLI's `prompt` and first delivery, the MCP server). Pure: facts in, text out.

The server decides what it accepts (chatroom.resolvers.handoffs); the functions here predict it
so that every command printed for an agent is one the server accepts (SPEC §9).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatroom.agent_commands import Commands, q

USER = "user"
REVIEWER = "reviewer"
BUILDER = "builder"
# A coordinating entry point is the only role the guidance sends back to the user.
COORDINATORS = frozenset({"planner"})
CHAIN = "A chain is the user's request and every handoff that followed from it."
LOOP = (
    "The loop never ends on its own: after every handoff, and after a wait that timed out, run "
    "the wait command again, until the user ends the session."
)
BODY_ONLY = (
    "Only the message body of task-complete reaches the recipient, so make it stand on its own: "
    "what you did, how you checked it, what is left."
)
KINDS = {
    "question": "answer it directly",
    "new_feature": "something gets built",
    "follow_up": "it continues the previous request and keeps its kind",
}

DUTIES: dict[str, str] = {
    "manager": (
        "You own the user's request from start to finish. Work out what is wanted, split it "
        "into steps, hand each step to the specialist who should do it, and check the result "
        "against the request before you report back to the user."
    ),
    "planner": (
        "You coordinate: you talk to the user, plan the work, hand the building to the builder, "
        "review what comes back, and report to the user when it is right."
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
    "solo": (
        "You are the whole team: you take the user's requests, do the work, check it yourself, "
        "and report back to the user."
    ),
}
GENERIC_DUTY = "Do the part of the work the message asks of your role, then hand off."


@dataclass(frozen=True)
class Team:
    """The room, as the guidance and the deliveries need it."""

    room_id: str
    room_name: str
    team_name: str
    roles: tuple[str, ...]
    entry_point: str

    @property
    def coordinated(self) -> bool:
        return self.entry_point in COORDINATORS


def one_waiter(role: str) -> str:
    return (
        f"One waiter per role: a second wait-for-message for {q(role)} receives the role's "
        "tasks from then on, and the first one ends with a superseded notice (do not start it "
        "again)."
    )


def review_blocks_user(team: Team, role: str, kind: str | None, reviewed: bool) -> bool:
    """The server's rule (SPEC §2.5, chatroom.resolvers.handoffs): with a reviewer in the team,
    a new_feature chain goes to the user only after the reviewer completed a task in it (the
    reviewer itself may)."""
    return REVIEWER in team.roles and role != REVIEWER and kind == "new_feature" and not reviewed


def may_hand_to_user(team: Team, role: str, kind: str | None, reviewed: bool) -> bool:
    """What the guidance allows: the server's rule, and in a coordinated team only the
    coordinator reports to the user."""
    if team.coordinated and role != team.entry_point:
        return False
    return not review_blocks_user(team, role, kind, reviewed)


REVIEW_RULE = (
    f"a new_feature chain reaches {q(USER)} only after {q(REVIEWER)} has completed a task in it"
)


@dataclass(frozen=True)
class Route:
    """Where a task's result goes by default, and why (said next to the command)."""

    target: str
    reason: str


def route(team: Team, role: str, sender: str, kind: str | None, reviewed: bool) -> Route:
    """The default handoff: back to the role that sent the work; the entry point reports to the
    user when work comes back; the user's own request by its kind (a new_feature is built, then
    reviewed, before the user sees it). Always a target the server accepts now."""
    entry = role == team.entry_point
    if sender != USER and not entry:
        return Route(sender, f"{q(sender)} sent you this work, so the result goes back to them")
    if kind == "new_feature" and sender == USER and BUILDER in team.roles and role != BUILDER:
        return Route(BUILDER, f"a new_feature is built by {q(BUILDER)}")
    if review_blocks_user(team, role, kind, reviewed):
        return Route(REVIEWER, REVIEW_RULE)
    if sender == USER:
        return Route(USER, "the request came from the user, so your answer goes back to them")
    return Route(USER, f"the work came back to you, and you report to {q(USER)}")


def targets(team: Team, role: str, kind: str | None, reviewed: bool) -> list[str]:
    """Every target the guidance allows for this role now, team order, `user` last."""
    out = [r for r in team.roles if r != role]
    return [*out, USER] if may_hand_to_user(team, role, kind, reviewed) else out


def role_intro(team: Team, role: str) -> list[str]:
    """Who the agent is: shown before its first delivery, and at the top of the guidance."""
    return [
        f"# You are the {role} of the {team.team_name} team in chatroom {team.room_name!r}",
        DUTIES.get(role, GENERIC_DUTY),
        f"Team, in order: {', '.join(team.roles)}; {team.entry_point} takes the user's "
        f"requests. The human is {q(USER)}.",
    ]


def role_guidance(team: Team, role: str, commands: Commands) -> str:
    """The full guidance for one role (`rolePrompt`, `chatroom prompt`): read when the agent
    starts, or again when it has lost its context. Each rule is said once; deliveries carry the
    exact commands for each task."""
    rid = team.room_id
    wait = commands.wait(rid, role)
    entry = role == team.entry_point
    lines = [
        *role_intro(team, role),
        "",
        "## Your loop",
        "",
        f"1. Run `{wait}` in the foreground: it blocks until a task for you arrives, claims it, "
        "and prints it with the exact commands for it.",
        f"2. Do the work, then run the `task-complete` command the delivery prints. {BODY_ONLY}",
        f"3. {LOOP}",
        "",
        one_waiter(role),
        "",
        "## Where your work goes",
        "",
        CHAIN,
        f"You may hand off to: {', '.join(targets(team, role, None, False))}.",
    ]
    others = [r for r in team.roles if r != role]
    if entry:
        lines.append(
            "Each request from the user starts a chain: classify it once with `task-started`, "
            "as "
            + ", ".join(f"{kind} ({why})" for kind, why in KINDS.items())
            + "; the delivery shows where each kind goes."
        )
        if others:
            lines.append(
                f"Hand parts of the work to {', '.join(q(r) for r in others)}; when it comes "
                f"back to you, you answer {q(USER)}."
            )
        else:
            lines.append(f"You answer {q(USER)} yourself.")
    else:
        lines.append("Hand your result back to the role that sent you the work.")
        if team.coordinated:
            lines.append(f"Only {q(team.entry_point)} reports to {q(USER)}.")
    if REVIEWER in team.roles:
        rule = REVIEW_RULE[0].upper() + REVIEW_RULE[1:]
        lines.append(f"{rule}; a question may go straight back.")
    lines += [
        "",
        "## If something goes wrong",
        "",
        f"- Lost your context? `{commands.prompt(rid, role)}` prints this again.",
        "- Restarted mid-task? The wait command gives you your unfinished task back, marked "
        "resumed.",
        "- A refused handoff changes nothing and prints the corrected command: run that.",
    ]
    return "\n".join(lines)
