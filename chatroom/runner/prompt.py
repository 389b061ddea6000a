"""The text a harness reads: the task, the exact commands that finish it, and the nudge.

The routing and the commands are the CLI delivery's own (chatroom.cli.render.choices and
other_targets over the DeliveryContext facts, chatroom.agent_commands for the command lines),
so the runner offers exactly the handoffs `wait-for-message` would, each one the server accepts
at that moment. What differs: the runner is the role's waiter, so the agent is told to end its
turn after handing off instead of running `wait-for-message` (a second waiter would take the
role over).
"""

from __future__ import annotations

from typing import Any

from chatroom.agent_commands import TERMINATOR, Commands, q
from chatroom.cli.render import (
    Chain,
    boundary,
    by_target,
    choices,
    handoff_lines,
    other_targets,
    sender_of,
    visible,
)
from chatroom.guidance import BODY_ONLY, KINDS, Team


def task_prompt(
    team: Team, role: str, delivery: dict[str, Any], chain: Chain, commands: Commands
) -> str:
    room_id = team.room_id
    task = delivery["task"]
    message = delivery.get("message") or {}
    body = message.get("content", task.get("content", ""))
    line = boundary(body)  # a line the body cannot contain
    options = choices(team, role, delivery, chain)
    undecided = options[0].kind is not None
    out = [
        f"You are the {q(role)} agent in chatroom room {q(room_id)}. The chatroom runner "
        "started you for one task; it waits for your next task itself.",
    ]
    if delivery.get("resumed"):
        out.append(
            "You already started this task before the runner restarted: check the workspace "
            "(files, git status) for the work done so far before redoing it."
        )
    out += [
        f"Task {q(task['id'])} from {q(sender_of(delivery))}, its message byte for byte between "
        f"the two {line} lines:",
        line,
        visible(body),
        line,
        "Next steps:",
        "1. Do the work the message asks for.",
    ]
    step = 2
    if undecided:
        out.append(f"{step}. Classify this request once; its kind decides your handoff:")
        out += [
            f"{commands.classify(room_id, role, c.kind or '')}  # {KINDS[c.kind or '']}: then "
            f"hand off to {q(c.target)}"
            for c in options
        ]
        step += 1
        out.append(
            f"{step}. When the work is done, hand off with the command for its kind, as one "
            f"shell command. {BODY_ONLY} Replace the middle line with your message; the last "
            f"line is exactly {TERMINATOR}."
        )
    else:
        out.append(
            f"{step}. When the work is done, hand off to {q(options[0].target)} "
            f"({options[0].route.reason}) with this one shell command. {BODY_ONLY} Replace the "
            f"middle line with your message; the last line is exactly {TERMINATOR}."
        )
    for target, kinds in by_target(options).items():
        if undecided:
            out.append(f"For {' or '.join(kinds)}:")
        out += handoff_lines(commands, room_id, role, target)
    for other in other_targets(team, role, chain, options):
        out += [
            f"Or, to hand off to {q(other)} instead:",
            *handoff_lines(commands, room_id, role, other),
        ]
    out.append(
        f"{step + 1}. After the handoff, end your turn. Do not run `chatroom wait-for-message`: "
        "the runner is this role's waiter and starts you again with the next task."
    )
    return "\n".join(out)


def nudge(
    team: Team,
    role: str,
    delivery: dict[str, Any],
    chain: Chain,
    commands: Commands,
    why: str,
) -> str:
    """Sent when a run ended without a handoff: what happened, and the handoff that applies
    now (`chain` is read again after the run: the agent may have classified meanwhile)."""
    task_id = delivery["task"]["id"]
    options = choices(team, role, delivery, chain)
    lines = [
        f"Your run ended ({why}) but task {q(task_id)} was not handed off: it is still "
        f"yours as {q(role)}. Finish the work if anything is left, then hand off now (replace "
        "the middle line with your message):",
    ]
    if options[0].kind is not None:
        lines.append("First classify the request, once:")
        lines += [
            f"{commands.classify(team.room_id, role, c.kind or '')}  # then hand off to "
            f"{q(c.target)}"
            for c in options
        ]
    for target in by_target(options):
        lines += handoff_lines(commands, team.room_id, role, target)
    lines.append("Then end your turn.")
    return "\n".join(lines)
