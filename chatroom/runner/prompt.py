"""The text a harness reads: the task, the exact commands that finish it, and the nudge.

The next steps come from the CLI's own delivery plan (chatroom.cli.render.plan) and command
builders (chatroom.cli.output), so the runner prints exactly the commands `wait-for-message`
would. What differs: the runner is the role's waiter, so the agent is told to end its turn after
handing off instead of running `wait-for-message` (a second waiter would take the role over).
"""

from __future__ import annotations

import secrets
from typing import Any

from chatroom.cli.message_input import PLACEHOLDER
from chatroom.cli.output import TERMINATOR, classify_cmd, complete_cmd, q
from chatroom.cli.render import CLASSIFICATIONS, REVIEWER, USER, RoleInfo, clean, plan


def handoff_block(room_id: str, role: str, target: str) -> list[str]:
    return [complete_cmd(room_id, role, target), PLACEHOLDER, TERMINATOR]


def task_prompt(room_id: str, info: RoleInfo, delivery: dict[str, Any]) -> str:
    role = info.role
    task = delivery["task"]
    message = delivery.get("message") or {}
    sender = message.get("senderRole") or task.get("createdBy") or "?"
    p = plan(info, delivery)
    # The body stands between boundary lines it cannot contain (a random token per prompt).
    boundary = f"CHATROOM_TASK_{secrets.token_hex(6)}"
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
        f"Task {q(task['id'])} from {q(sender)}, its message between the {boundary} lines:",
        boundary,
        clean(message.get("content", task.get("content", ""))),
        boundary,
        "Next steps:",
        "1. Do the work the message asks for.",
    ]
    step = 2
    if p.classify:
        out.append(f"{step}. First classify this request from the user: run the line that fits.")
        out += [f"{classify_cmd(room_id, role, k)}  # {why}" for k, why in CLASSIFICATIONS.items()]
        step += 1
    note = ""
    if p.target == USER and REVIEWER in p.others:
        note = (
            f" A new_feature reaches the user only after {q(REVIEWER)} has completed a task in "
            "this chain: hand a new_feature to the reviewer first."
        )
    out += [
        f"{step}. When the work is done, hand off to {q(p.target)} ({p.reason}) with this one "
        f"shell command; replace the middle line with your message; the last line is exactly "
        f"{TERMINATOR}:" + note,
        *handoff_block(room_id, role, p.target),
    ]
    for other in p.others:
        out += [f"Or, to hand off to {q(other)} instead:", *handoff_block(room_id, role, other)]
    out += [
        f"{step + 1}. After the handoff, end your turn. Do not run `chatroom wait-for-message`: "
        "the runner is this role's waiter and starts you again with the next task.",
        "Only the handoff message reaches the next role; nothing else you write is seen.",
    ]
    return "\n".join(out)


def nudge(room_id: str, info: RoleInfo, delivery: dict[str, Any], why: str) -> str:
    """Sent when a run ended without a handoff: what happened, and the command, again."""
    task_id = delivery["task"]["id"]
    target = plan(info, delivery).target
    return "\n".join(
        [
            f"Your run ended ({why}) but task {q(task_id)} was not handed off: it is still "
            f"yours as {q(info.role)}. Finish the work if anything is left, then run the "
            "handoff now (replace the middle line with your message):",
            *handoff_block(room_id, info.role, target),
            "Then end your turn.",
        ]
    )
