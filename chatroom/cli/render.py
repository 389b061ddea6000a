"""What `wait-for-message` prints: a delivery (text or JSON), or one calm block for every
expected end. The layout follows docs/cli.md and the ergonomics notes (§c): identity line,
the task with its message escaped, next steps with the wait command last, the other targets, a
three-line footer. Everything except the message body stays within 80 lines."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatroom.cli.message_input import PLACEHOLDER
from chatroom.cli.output import (
    TERMINATOR,
    classify_cmd,
    complete_cmd,
    prompt_cmd,
    q,
    wait_cmd,
)

USER = "user"
CLASSIFICATIONS = {
    "question": "answer it directly",
    "new_feature": "something gets built",
    "follow_up": "it continues the previous request",
}
REVIEWER = "reviewer"

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Drop ANSI escapes and control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def escape(text: str) -> str:
    """Message text as it is printed inside `<message>`: cleaned, then `& < >` escaped."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """The inverse of the `& < >` escaping (for tools and tests reading a delivery)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RoleInfo:
    """From `rolePrompt`: where this role may hand off, and its full guidance."""

    role: str
    allowed_targets: list[str]
    default_target: str
    prompt: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> RoleInfo:
        return cls(
            role=data["role"],
            allowed_targets=list(data["allowedTargets"]),
            default_target=data["defaultTarget"],
            prompt=data["prompt"],
        )


@dataclass(frozen=True)
class Plan:
    """The next steps for one delivery."""

    target: str
    reason: str
    classify: bool
    others: list[str]


def plan(info: RoleInfo, delivery: dict[str, Any]) -> Plan:
    message = delivery.get("message") or {}
    task = delivery.get("task") or {}
    sender = message.get("senderRole") or task.get("createdBy") or info.default_target
    if sender == USER:
        target = USER
        reason = "this request came from the user, so your answer goes back to them"
    elif sender in info.allowed_targets:
        target = sender
        reason = f"{q(sender)} sent you this work, so the result goes back to them"
    else:
        target = info.default_target
        reason = "it is your role's usual next step"
    others = [t for t in info.allowed_targets if t != target]
    from_user = sender == USER and message.get("type", "MESSAGE") == "MESSAGE"
    classify = from_user and not message.get("classification")
    return Plan(target, reason, classify, others)


def delivery_text(
    room_id: str,
    info: RoleInfo,
    delivery: dict[str, Any],
    *,
    guidance: bool,
) -> str:
    role = info.role
    task = delivery["task"]
    message = delivery.get("message") or {}
    sender = message.get("senderRole") or task.get("createdBy") or "?"
    resumed = bool(delivery.get("resumed"))
    p = plan(info, delivery)
    wait = wait_cmd(room_id, role)
    out: list[str] = []
    if guidance:
        out += [
            '<role-guidance note="shown once per role; `chatroom prompt` shows it again">',
            clean(info.prompt),
            "</role-guidance>",
        ]
    out += [
        f"[{now()}] TASK RECEIVED as {q(role)} in room {q(room_id)}",
        f'task={q(task["id"])} from={q(sender)} resumed="{"yes" if resumed else "no"}"',
    ]
    if resumed:
        out.append(
            "You already started this task before your process restarted: check the workspace "
            "(files, git status, running processes) for the work done so far before redoing it."
        )
    out += [
        f"<task task-id={q(task['id'])} message-id={q(message.get('id', ''))} sender={q(sender)}>",
        "<message>",
        escape(message.get("content", task.get("content", ""))),
        "</message>",
        "</task>",
        "<next-steps>",
        "1. Do the work the message asks for (these steps are the usual pattern, not a script).",
    ]
    step = 2
    if p.classify:
        out += [
            f"{step}. Classify this request from the user once, now: run the one line that fits.",
            *(
                f"{classify_cmd(room_id, role, kind)}  # {why}"
                for kind, why in CLASSIFICATIONS.items()
            ),
        ]
        step += 1
    review_note = ""
    if p.target == USER and REVIEWER in p.others:
        review_note = (
            f" A new_feature reaches the user only after {q(REVIEWER)} has completed a task "
            "in this chain."
        )
    out += [
        f"{step}. When the work is done, hand off to {q(p.target)} (the default: {p.reason})."
        + review_note,
        "Run it as one command; only the message body reaches the recipient, so make it stand "
        f"on its own. The closing line is exactly {TERMINATOR}, alone at column 0 (not EOF):",
        complete_cmd(room_id, role, p.target),
        PLACEHOLDER,
        TERMINATOR,
        f"{step + 1}. Then run this now, in the foreground (it blocks until your next task):",
        wait,
        "</next-steps>",
    ]
    if p.others:
        out += [
            "<handoffs>",
            f"Also allowed: {', '.join(q(t) for t in p.others)}. To hand off to one of them "
            f"instead, swap the --next-role value in step {step}.",
            "</handoffs>",
        ]
    out += footer(room_id, role)
    return "\n".join(out)


def footer(room_id: str, role: str) -> list[str]:
    return [
        "Only the task-complete message body reaches the recipient; nothing else you write is "
        "seen by anyone.",
        f"After task-complete, run `{wait_cmd(room_id, role)}` in the foreground: a finished "
        "task is not a finished session.",
        f"Lost your context? `{prompt_cmd(room_id, role)}` prints your role guidance again.",
    ]


def message_summary(message: dict[str, Any] | None, *, with_content: bool) -> Any:
    if not message:
        return None
    content = message.get("content", "")
    out = {
        "id": message.get("id"),
        "sender": message.get("senderRole"),
        "type": (message.get("type") or "").lower() or None,
        "chars": len(content),
        "sha256": hashlib.sha256(content.encode("utf-8")).hexdigest(),
    }
    if with_content:
        out["content"] = content
    return out


def delivery_json(
    room_id: str,
    info: RoleInfo,
    delivery: dict[str, Any],
    *,
    with_content: bool,
) -> dict[str, Any]:
    task = delivery["task"]
    p = plan(info, delivery)
    role = info.role
    body = wait_json("task", room_id, role, info=info, with_content=with_content)
    body["task"] = {
        "id": task["id"],
        "status": (task.get("status") or "").lower(),
        "resumed": bool(delivery.get("resumed")),
        "attempt": task.get("attempt"),
    }
    body["message"] = message_summary(delivery.get("message"), with_content=with_content)
    body["next"].update(
        default_target=p.target,
        complete_cmd=complete_cmd(room_id, role, p.target),
        classify_cmds=(
            {kind: classify_cmd(room_id, role, kind) for kind in CLASSIFICATIONS}
            if p.classify
            else None
        ),
    )
    return body


def wait_json(
    event: str,
    room_id: str,
    role: str,
    *,
    info: RoleInfo | None = None,
    message: dict[str, Any] | None = None,
    with_content: bool = False,
    timeout: str | None = None,
) -> dict[str, Any]:
    """The one JSON object of wait-for-message; the same keys for every event."""
    return {
        "event": event,
        "room_id": room_id,
        "role": role,
        "task": None,
        "message": message_summary(message, with_content=with_content),
        "next": {
            "default_target": None,
            "allowed_targets": info.allowed_targets if info else None,
            "complete_cmd": None,
            "classify_cmds": None,
            "wait_cmd": None if event == "superseded" else wait_cmd(room_id, role, timeout),
        },
        "recovery": {"prompt_cmd": prompt_cmd(room_id, role)},
    }


def calm_block(
    event: str,
    room_id: str,
    role: str,
    *,
    detail: str = "",
    message: dict[str, Any] | None = None,
    timeout: str | None = None,
) -> str:
    """One block for an expected end: what happened, then the exact command to run again
    (none for `superseded`: another process holds the role now)."""
    who = f"{q(role)} in room {q(room_id)}"
    again = wait_cmd(room_id, role, timeout)
    head = f"[EVENT: {event}] {now()}"
    if event == "superseded":
        return "\n".join(
            [
                head,
                f"Another wait-for-message for {who} took over: that newer waiter now receives "
                "this role's tasks.",
                "Do NOT run wait-for-message again from this process: two waiters for one role "
                "would keep taking the role from each other. If you did not start the other "
                "waiter yourself, stop here and tell the user.",
            ]
        )
    if event == "interrupt":
        note = escape((message or {}).get("content", "")).strip()
        lines = [
            head,
            f"The user interrupted the room: stop what you are doing as {q(role)}. Any task "
            "you held went back to pending and is delivered again when you wait.",
        ]
        if note:
            lines += ["<message>", note, "</message>"]
        lines += [
            "Then run this now, in the foreground, to wait for the next instruction:",
            again,
        ]
        return "\n".join(lines)
    what = {
        "timeout": f"No task arrived for {who} within {_duration(timeout)}. Nothing is lost: "
        "tasks wait on the server until you take them.",
        "signal": f"wait-for-message for {who} was stopped{detail} before a task arrived; "
        "no task was taken.",
        "connection_lost": f"Lost the connection to the server{detail} and could not restore "
        f"it; no task was taken for {who}.",
    }[event]
    action = (
        "When the server is back, run this in the foreground:"
        if event == "connection_lost"
        else "Run this now, in the foreground, to keep waiting:"
    )
    return "\n".join([head, what, action, again])


def _duration(text: str | None) -> str:
    """`--timeout` as given, with the unit a bare number implies."""
    if text is None:
        return "the timeout"
    text = text.strip()
    return f"{text}s" if text.replace(".", "", 1).isdigit() else text
