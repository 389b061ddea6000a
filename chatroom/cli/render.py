"""What `wait-for-message` prints: a delivery (text or JSON), or one calm block for every
expected end (docs/cli.md, SPEC §9). `delivery_text` is pure (facts in, text out), so every
client prints the same delivery: the identity line, the chain and the queue behind it, the body
byte for byte between per-delivery boundary lines, the next steps (the classification first when
it decides the handoff), the other targets, and the rules, each said once."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatroom.agent_commands import TERMINATOR, Commands
from chatroom.cli.message_input import PLACEHOLDER
from chatroom.cli.output import (
    prompt_cmd,
    q,
    wait_cmd,
)
from chatroom.guidance import (
    BODY_ONLY,
    CHAIN,
    KINDS,
    LOOP,
    REVIEW_RULE,
    REVIEWER,
    USER,
    Route,
    Team,
    one_waiter,
    role_intro,
    route,
    targets,
)

CLASSIFICATIONS = KINDS
__all__ = ["REVIEWER", "USER"]

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Drop ANSI escapes and control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


_UNSAFE = re.compile(r"\r(?!\n)|[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """A body as printed to a terminal: every byte as written, except control characters,
    which would act on the terminal, shown as escapes (`\x1b`, `\r` when not before a newline).
    Tabs, newlines and CRLF line ends pass as they are."""
    return _UNSAFE.sub(lambda m: "\\r" if m.group() == "\r" else f"\\x{ord(m.group()):02x}", text)


def boundary(body: str) -> str:
    """A delimiter line no line of the body can equal: a fresh random token per delivery."""
    while True:
        line = f"CHATROOM_BODY_{secrets.token_hex(6)}"
        if line not in body:
            return line


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
class Chain:
    """What decides the next steps, read after the claim (the DeliveryContext query)."""

    kind: str | None  # the chain's effective classification; None while unclassified
    reviewed: bool  # the reviewer has completed a task in this chain (ContextWindow.reviewed)
    follows: str | None  # the kind a follow_up would inherit; None: no earlier request
    queued: int  # requests queued behind this chain

    @classmethod
    def of(cls, data: dict[str, Any]) -> Chain:
        window = data.get("contextWindow") or {}
        last = (data.get("chatroom") or {}).get("lastRequest") or {}
        origin = (window.get("originMessage") or {}).get("id")
        follows = None
        if last and last.get("id") != origin:
            follows = (last.get("effectiveClassification") or "question").lower()
        return cls(
            kind=(window.get("classification") or "").lower() or None,
            reviewed=bool(window.get("reviewed")),
            follows=follows,
            queued=int((data.get("taskCounts") or {}).get("queued") or 0),
        )


def team_of(room_id: str, room: dict[str, Any]) -> Team:
    return Team(
        room_id=room_id,
        room_name=room["name"],
        team_name=room["teamName"],
        roles=tuple(room["teamRoles"]),
        entry_point=room["entryPoint"],
    )


@dataclass(frozen=True)
class Choice:
    """One way to go on: the classification to record first (None: nothing to decide), and
    the handoff that the server accepts after it."""

    kind: str | None
    route: Route

    @property
    def target(self) -> str:
        return self.route.target


def sender_of(delivery: dict[str, Any]) -> str:
    message = delivery.get("message") or {}
    task = delivery.get("task") or {}
    return str(message.get("senderRole") or task.get("createdBy") or USER)


def choices(team: Team, role: str, delivery: dict[str, Any], chain: Chain) -> list[Choice]:
    """The handoff that applies now, or, while the user's request is unclassified, one per
    classification the server would accept (follow_up only when there is a request to follow)."""
    sender = sender_of(delivery)
    if sender != USER or chain.kind is not None:
        return [Choice(None, route(team, role, sender, chain.kind, chain.reviewed))]
    kinds = [k for k in KINDS if k != "follow_up" or chain.follows is not None]
    return [
        Choice(k, route(team, role, USER, chain.follows if k == "follow_up" else k, False))
        for k in kinds
    ]


def other_targets(team: Team, role: str, chain: Chain, options: list[Choice]) -> list[str]:
    """Targets the server accepts besides the ones shown with their commands, whichever kind is
    chosen (an undecided request counts as new_feature, the strictest)."""
    undecided = options[0].kind is not None
    kind = "new_feature" if undecided else chain.kind
    reviewed = chain.reviewed and not undecided
    shown = {c.target for c in options}
    return [t for t in targets(team, role, kind, reviewed) if t not in shown]


def by_target(options: list[Choice]) -> dict[str, list[str]]:
    """The distinct handoff targets of `options`, in order, each with the kinds that lead to it
    (one heredoc per target: two kinds that go to the same role share it)."""
    groups: dict[str, list[str]] = {}
    for c in options:
        groups.setdefault(c.target, []).append(c.kind or "")
    return groups


def handoff_lines(commands: Commands, room_id: str, role: str, target: str) -> list[str]:
    return [commands.complete(room_id, role, target), PLACEHOLDER, TERMINATOR]


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def delivery_text(
    team: Team,
    role: str,
    delivery: dict[str, Any],
    chain: Chain,
    commands: Commands,
    *,
    intro: bool = False,
    stamp: str | None = None,
) -> str:
    """One delivery, as printed: pure, so any client prints the same. Each rule is said once;
    `intro` puts the role's identity first (the first delivery of a role)."""
    rid = team.room_id
    task = delivery["task"]
    message = delivery.get("message") or {}
    sender = sender_of(delivery)
    resumed = bool(delivery.get("resumed"))
    body = message.get("content", task.get("content", ""))
    line = boundary(body)
    options = choices(team, role, delivery, chain)
    undecided = options[0].kind is not None
    out: list[str] = role_intro(team, role) if intro else []
    queued = (
        f"{chain.queued} more {_plural(chain.queued, 'request is', 'requests are')} queued "
        "behind this chain."
        if chain.queued
        else "No request is queued behind this chain."
    )
    starts = (
        "this task starts one with the user's request below."
        if sender == USER
        else f"this task continues one with {q(sender)}'s handoff below."
    )
    out += [
        f"[{stamp or now()}] TASK RECEIVED as {q(role)} in room {q(rid)}",
        f'task={q(task["id"])} from={q(sender)} resumed="{"yes" if resumed else "no"}" '
        f"message={q(message.get('id', ''))}",
        f"{CHAIN[:-1]}; {starts} {queued}",
    ]
    if resumed:
        out.append(
            "You already started this task before your process restarted: check the workspace "
            "(files, git status, running processes) for the work done so far before redoing it."
        )
    out += [
        f"The message, byte for byte, between the two {line} lines:",
        line,
        visible(body),
        line,
        "Next steps:",
    ]
    step = 1
    if undecided:
        out.append(f"{step}. Classify this request once, now; its kind decides your handoff:")
        out += [
            f"{commands.classify(rid, role, c.kind or '')}  # {KINDS[c.kind or '']}: then "
            f"hand off to {q(c.target)}"
            for c in options
        ]
        step += 1
        out.append(
            f"{step}. Do the work, then hand off with the command for its kind (task-started "
            "prints it too), as one command."
        )
    else:
        out.append(
            f"{step}. Do the work, then hand off to {q(options[0].target)} "
            f"({options[0].route.reason}), as one command."
        )
    out.append(
        f"{BODY_ONLY} Replace the middle line with your message, any number of lines; the "
        f"last line is exactly {TERMINATOR}, alone at column 0."
    )
    groups = by_target(options)
    for target, kinds in groups.items():
        if undecided:
            out.append(f"For {' or '.join(kinds)}:")
        out += handoff_lines(commands, rid, role, target)
    shown = list(groups)
    out += [
        f"{step + 1}. Right after the handoff, run this in the foreground; it blocks until your "
        "next task:",
        commands.wait(rid, role),
    ]
    others = other_targets(team, role, chain, options)
    if others:
        out.append(f"Also allowed: {', '.join(q(t) for t in others)} (swap the --next-role value).")
    said = any(c.route.reason == REVIEW_RULE for c in options)
    if USER not in shown + others:
        if team.coordinated and role != team.entry_point:
            out.append(f"Only {q(team.entry_point)} reports to {q(USER)}.")
        elif not said and REVIEWER in team.roles:
            out.append(f"Not {q(USER)} yet: {REVIEW_RULE}.")
    out += [
        LOOP,
        one_waiter(role),
        f"Lost your context? `{commands.prompt(rid, role)}` prints your role guidance again.",
    ]
    return "\n".join(out)


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
    team: Team,
    role: str,
    delivery: dict[str, Any],
    chain: Chain,
    commands: Commands,
    *,
    with_content: bool,
) -> dict[str, Any]:
    """The same facts as delivery_text, as one object: ids, counts and commands, the body only
    with `--with-content` (then exactly as it was sent)."""
    rid = team.room_id
    task = delivery["task"]
    options = choices(team, role, delivery, chain)
    undecided = options[0].kind is not None
    body = wait_json("task", rid, role, with_content=with_content, timeout=commands.timeout)
    body["task"] = {
        "id": task["id"],
        "status": (task.get("status") or "").lower(),
        "resumed": bool(delivery.get("resumed")),
        "attempt": task.get("attempt"),
    }
    body["message"] = message_summary(delivery.get("message"), with_content=with_content)
    body["queued_behind"] = chain.queued
    allowed = {c.target for c in options} | set(other_targets(team, role, chain, options))
    body["next"].update(
        allowed_targets=[t for t in [*team.roles, USER] if t in allowed],
        default_target=None if undecided else options[0].target,
        complete_cmd=None if undecided else commands.complete(rid, role, options[0].target),
        classify_cmds=(
            {c.kind: commands.classify(rid, role, c.kind or "") for c in options}
            if undecided
            else None
        ),
        complete_cmds=(
            {c.kind: commands.complete(rid, role, c.target) for c in options} if undecided else None
        ),
        wait_cmd=commands.wait(rid, role),
    )
    body["recovery"] = {"prompt_cmd": commands.prompt(rid, role)}
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
        "queued_behind": None,
        "next": {
            "default_target": None,
            "allowed_targets": info.allowed_targets if info else None,
            "complete_cmd": None,
            "classify_cmds": None,
            "complete_cmds": None,
            "wait_cmd": None if event == "superseded" else wait_cmd(room_id, role, timeout),
        },
        "recovery": {"prompt_cmd": prompt_cmd(room_id, role, timeout)},
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
        note = visible((message or {}).get("content", "")).strip()
        lines = [
            head,
            f"The user interrupted the room: stop what you are doing as {q(role)}. Any task "
            "you held went back to pending and is delivered again when you wait.",
        ]
        if note:
            line = boundary(note)
            lines += [f"The user's note, between the two {line} lines:", line, note, line]
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
