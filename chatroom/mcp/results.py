"""What the tools answer: a delivered task, a calm end of a wait, and an error, in the words an
agent acts on. Errors are the CLI's text (`CODE: message`, then its lines), as a tool error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from mcp.types import CallToolResult, TextContent

from chatroom.cli.errors import CliError
from chatroom.cli.live import Outcome
from chatroom.cli.render import Chain, by_target, choices, other_targets
from chatroom.guidance import KINDS, Team

P = ParamSpec("P")
R = TypeVar("R")


def error_text(exc: CliError) -> str:
    """The CLI's report of `exc`: `CODE: message` (the message alone for a local mistake), then
    its extra lines, as `chatroom` prints them after its `chatroom: ` prefix."""
    head = exc.message
    if exc.code not in ("ERROR", "BAD_LOCAL_INPUT"):
        head = f"{exc.code}: {exc.message}"
    return "\n".join([head, *exc.lines])


def failure(text: str) -> CallToolResult:
    """A tool error (isError) whose text is exactly `text`: returned rather than raised, since
    the SDK puts its own "Error executing tool ..." before the text of a raised ToolError."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def unexpected(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300]
    return (
        f"unexpected error ({type(exc).__name__}: {text}). This is a bug in chatroom mcp; "
        "report it."
    )


def reported(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A tool whose failures come back as tool errors: the CLI's text for the CLI's errors,
    one line for anything else, never a traceback."""

    @wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except CliError as exc:
            return cast(R, failure(error_text(exc)))
        except Exception as exc:
            return cast(R, failure(unexpected(exc)))

    return run


def next_steps(team: Team, role: str, delivery: dict[str, Any], chain: Chain) -> dict[str, Any]:
    """Where a delivered task may go, routed exactly as the CLI's delivery routes it
    (chatroom.cli.render.choices over the DeliveryContext facts): every target named here is
    one the server accepts at that moment. While the user's request is unclassified there is
    no single default: each classification names its own handoff."""
    options = choices(team, role, delivery, chain)
    shown = list(by_target(options))
    allowed = shown + other_targets(team, role, chain, options)
    if options[0].kind is not None:
        by_kind = {c.kind or "": c.target for c in options}
        kinds = "; ".join(f"{k} ({KINDS[k]}): then target_role {t!r}" for k, t in by_kind.items())
        return {
            "default_target": None,
            "handoff_by_classification": by_kind,
            "allowed_targets": allowed,
            "next": "This request comes straight from the user: first call classify once with "
            f"the kind that fits: {kinds}. Then do the work and call hand_off with your report "
            "as `message`. Only the handoff message reaches the next role.",
        }
    first = options[0]
    others = [t for t in allowed if t != first.target]
    also = f" Also allowed: {', '.join(others)}." if others else ""
    return {
        "default_target": first.target,
        "handoff_by_classification": None,
        "allowed_targets": allowed,
        "next": f"Do the work, then call hand_off with your report as `message` and target_role "
        f"{first.target!r} ({first.route.reason}).{also} Only the handoff message reaches the "
        "next role.",
    }


def task_result(room: str, outcome: Outcome, role: str, steps: dict[str, Any]) -> dict[str, Any]:
    """A delivered task as wait_for_task returns it (and a channel push carries it); `steps`
    is `next_steps` for it."""
    delivery = outcome.delivery or {}
    task = delivery["task"]
    message = delivery.get("message") or {}
    return {
        "event": "task",
        "room_id": room,
        "role": role,
        "task_id": task["id"],
        "resumed": bool(delivery.get("resumed")),
        "message_id": message.get("id"),
        "from_role": message.get("senderRole") or task.get("createdBy"),
        "classification": (message.get("classification") or "").lower() or None,
        "body": message.get("content", task.get("content")),
        **steps,
    }


def calm_result(room: str, role: str, outcome: Outcome | None) -> dict[str, Any]:
    """An expected end of wait_for_task without a task: what happened and what to do."""
    event = "timeout" if outcome is None else outcome.event
    next_text = {
        "timeout": "No task arrived in time. Nothing is lost: call wait_for_task again.",
        "superseded": "Another waiter for this role (an MCP server or `chatroom "
        "wait-for-message`) took over and now receives its tasks. Do not call wait_for_task "
        "again from here: two waiters would keep taking the role from each other.",
        "interrupt": "The user interrupted the room: stop what you are doing. A task you held "
        "went back to pending; call wait_for_task to get the next instruction.",
    }.get(event, "Call wait_for_task again.")
    result: dict[str, Any] = {"event": event, "room_id": room, "role": role, "next": next_text}
    if outcome is not None and outcome.event == "interrupt":
        result["note"] = ((outcome.delivery or {}).get("message") or {}).get("content") or None
    return result
