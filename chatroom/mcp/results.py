"""What the tools answer: a delivered task, a calm end of a wait, and an error, in the words an
agent acts on. Errors are the CLI's text (`CODE: message`, then its lines), as a tool error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from mcp.types import CallToolResult, TextContent

from chatroom.cli.errors import CliError
from chatroom.cli.live import Outcome
from chatroom.cli.render import CLASSIFICATIONS, RoleInfo, plan

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


def next_step(info: RoleInfo, delivery: dict[str, Any]) -> str:
    """What to do with a delivered task, in tool calls (the CLI's delivery plan)."""
    p = plan(info, delivery)
    others = f" Other allowed targets: {', '.join(p.others)}." if p.others else ""
    if p.classify:
        kinds = "; ".join(f"{kind}: {why}" for kind, why in CLASSIFICATIONS.items())
        return (
            "This request comes straight from the user: first call classify with one of "
            f"question, new_feature, follow_up ({kinds}); its answer says where to hand off. "
            "Then do the work and call hand_off with your report as `message`."
        )
    return (
        f"Do the work, then call hand_off with your report as `message` and target_role "
        f"{p.target!r} ({p.reason}).{others} Only the handoff message reaches the next role."
    )


def task_result(room: str, outcome: Outcome, info: RoleInfo) -> dict[str, Any]:
    """A delivered task as wait_for_task returns it (and a channel push carries it)."""
    delivery = outcome.delivery or {}
    task = delivery["task"]
    message = delivery.get("message") or {}
    return {
        "event": "task",
        "room_id": room,
        "role": info.role,
        "task_id": task["id"],
        "resumed": bool(delivery.get("resumed")),
        "message_id": message.get("id"),
        "from_role": message.get("senderRole") or task.get("createdBy"),
        "classification": (message.get("classification") or "").lower() or None,
        "body": message.get("content", task.get("content")),
        "allowed_targets": info.allowed_targets,
        "default_target": plan(info, delivery).target,
        "next": next_step(info, delivery),
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
