"""`chatroom backlog list | add | complete | cancel | move`: work kept for later."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chatroom.cli.common import (
    JsonOpt,
    MessageFileOpt,
    MessageOpt,
    RoomArg,
    ServerOpt,
    WithContentOpt,
    api,
    setup,
)
from chatroom.cli.message_input import read_body
from chatroom.cli.output import OPTIONS, echo, emit_json, program, q, server_suffix
from chatroom.cli.render import clean

backlog_app = typer.Typer(
    name="backlog",
    help="Tasks kept for later: list, add, complete, cancel, move to the queue.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

TaskArg = Annotated[str, typer.Argument(help="The task id.", show_default=False)]
PREVIEW_CHARS = 100


def _task_json(task: dict[str, Any], *, with_content: bool = False) -> dict[str, Any]:
    out = {
        "task_id": task["id"],
        "status": task["status"].lower(),
        "queue_position": task.get("queuePosition"),
    }
    if "createdAt" in task:
        out["created_at"] = task["createdAt"]
        out["chars"] = len(task.get("content", ""))
        if with_content:
            out["content"] = task.get("content", "")
    return out


def _preview(content: str) -> str:
    first = clean(content).strip().split("\n", 1)[0]
    more = "\n" in content.strip()
    if len(first) > PREVIEW_CHARS:
        first, more = first[: PREVIEW_CHARS - 3], True
    return first + (" ..." if more else "")


@backlog_app.command("list")
def list_backlog(
    room_id: RoomArg,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
    with_content: WithContentOpt = False,
) -> None:
    """List the room's backlog, oldest first."""
    setup(json_out, server, with_content)
    tasks = api().call("Tasks", {"chatroomId": room_id, "statuses": ["BACKLOG"]})["tasks"]
    if OPTIONS.json:
        emit_json(
            {
                "room_id": room_id,
                "tasks": [_task_json(t, with_content=OPTIONS.with_content) for t in tasks],
            }
        )
        return
    if not tasks:
        echo(f"The backlog is empty. Add to it: {program()} backlog add {q(room_id)} --message=...")
        return
    for task in tasks:
        echo(f"{task['id']}  {task['createdAt'][:16]}  {_preview(task['content'])}")


@backlog_app.command("add")
def add(
    room_id: RoomArg,
    message: MessageOpt = None,
    message_file: MessageFileOpt = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Add a task to the backlog (text from --message, --message-file or stdin)."""
    setup(json_out, server)
    body = read_body(
        message,
        message_file,
        example=[
            f"{program()} backlog add {q(room_id)}{server_suffix()} << 'CHATROOM_MESSAGE_END'",
            "<the task>",
            "CHATROOM_MESSAGE_END",
        ],
    )
    task = api().call(
        "AddBacklogTask", {"input": {"chatroomId": room_id, "content": body.text}}, retry="connect"
    )["addBacklogTask"]
    _report(room_id, task, "added to the backlog")


def _report(room_id: str, task: dict[str, Any], what: str) -> None:
    if OPTIONS.json:
        emit_json({"room_id": room_id, **_task_json(task)})
        return
    status = task["status"].lower()
    where = f" (queue position {task['queuePosition']})" if task.get("queuePosition") else ""
    echo(f"Task {q(task['id'])} {what}: now {status}{where}.")


@backlog_app.command("complete")
def complete(
    room_id: RoomArg, task_id: TaskArg, json_out: JsonOpt = False, server: ServerOpt = None
) -> None:
    """Mark a backlog (or queued) task done without running it."""
    setup(json_out, server)
    task = api().call(
        "CompleteTask",
        {"input": {"chatroomId": room_id, "taskId": task_id, "force": False}},
        retry="connect",
    )["completeTask"]
    _report(room_id, task, "completed")


@backlog_app.command("cancel")
def cancel(
    room_id: RoomArg, task_id: TaskArg, json_out: JsonOpt = False, server: ServerOpt = None
) -> None:
    """Cancel a backlog (or queued) task."""
    setup(json_out, server)
    task = api().call(
        "CancelTask", {"input": {"chatroomId": room_id, "taskId": task_id}}, retry="connect"
    )["cancelTask"]
    _report(room_id, task, "cancelled")


@backlog_app.command("move")
def move(
    room_id: RoomArg, task_id: TaskArg, json_out: JsonOpt = False, server: ServerOpt = None
) -> None:
    """Move a backlog task to the queue (it starts now if the room is idle)."""
    setup(json_out, server)
    task = api().call(
        "MoveTaskToQueue", {"input": {"chatroomId": room_id, "taskId": task_id}}, retry="connect"
    )["moveTaskToQueue"]
    _report(room_id, task, "moved to the queue")
