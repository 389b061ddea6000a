"""`chatroom watch <room>`: the room's events as they happen, one line each.

It resumes after a dropped connection from the last event it printed (`roomEvents(afterSeq)`),
so nothing is missed or printed twice."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from chatroom.cli.client import LONG_RETRY_SECONDS
from chatroom.cli.common import JsonOpt, RoomArg, ServerOpt, WithContentOpt, api, setup
from chatroom.cli.durations import parse_duration
from chatroom.cli.output import echo, echo_err, emit_json, program, q, server_suffix
from chatroom.cli.render import clean

PREVIEW_CHARS = 120


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def event_json(event: dict[str, Any], *, with_content: bool) -> dict[str, Any]:
    message = event.get("message")
    task = event.get("task")
    participant = event.get("participant")
    room = event.get("room")
    out_message = None
    if message:
        out_message = {
            "id": message["id"],
            "sender": message["senderRole"],
            "target": message.get("targetRole"),
            "type": _lower(message.get("type")),
            "classification": _lower(message.get("classification")),
            "chars": len(message.get("content") or ""),
        }
        if with_content:
            out_message["content"] = message.get("content")
    return {
        "seq": event["seq"],
        "kind": _lower(event["kind"]),
        "created_at": event.get("createdAt"),
        "message": out_message,
        "task": (
            {
                "id": task["id"],
                "status": _lower(task["status"]),
                "assigned_to": task.get("assignedTo"),
                "queue_position": task.get("queuePosition"),
            }
            if task
            else None
        ),
        "participant": (
            {"role": participant["role"], "status": _lower(participant["status"])}
            if participant
            else None
        ),
        "room": (
            {"id": room["id"], "name": room["name"], "status": _lower(room["status"])}
            if room
            else None
        ),
    }


def event_line(event: dict[str, Any], *, full: bool) -> str:
    stamp = (event.get("createdAt") or "")[11:19]
    head = f"#{event['seq']} {stamp}"
    kind = event["kind"]
    message = event.get("message")
    task = event.get("task")
    participant = event.get("participant")
    room = event.get("room")
    if kind == "MESSAGE_CREATED" and message:
        content = clean(message.get("content") or "").rstrip()
        arrow = message["senderRole"] + (
            f" -> {message['targetRole']}" if message.get("targetRole") else ""
        )
        label = _lower(message.get("type")) or "message"
        if full:
            body = "\n".join("    " + line for line in content.split("\n"))
            return f"{head} {label:<9} {arrow}\n{body}"
        first, _, rest = content.partition("\n")
        extra = rest.count("\n") + 1 if rest else 0
        if len(first) > PREVIEW_CHARS:
            first = first[: PREVIEW_CHARS - 3] + "..."
        more = f" (+{extra} line{'s' if extra > 1 else ''})" if extra else ""
        return f"{head} {label:<9} {arrow}: {first}{more}"
    if kind == "MESSAGE_UPDATED" and message:
        what = _lower(message.get("classification")) or "updated"
        return f"{head} classify  message {q(message['id'])}: {what}"
    if kind in ("TASK_CREATED", "TASK_UPDATED") and task:
        status = _lower(task["status"])
        who = f" for {task['assignedTo']}" if task.get("assignedTo") else ""
        pos = f" at position {task['queuePosition']}" if task.get("queuePosition") else ""
        verb = "created:" if kind == "TASK_CREATED" else "is now"
        return f"{head} task      {q(task['id'])} {verb} {status}{who}{pos}"
    if kind == "PARTICIPANT_UPDATED" and participant:
        return f"{head} role      {participant['role']} is {_lower(participant['status'])}"
    if kind == "ROOM_UPDATED" and room:
        return f"{head} room      {clean(room['name'])!r} is {_lower(room['status'])}"
    return f"{head} {_lower(kind)}"


def watch(
    room_id: RoomArg,
    after_seq: Annotated[
        int | None,
        typer.Option("--after-seq", help="Replay the events after this seq first.", min=0),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the room's whole history first.")
    ] = False,
    count: Annotated[
        int | None, typer.Option("--count", help="Stop after this many events.", min=1)
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="Stop after this long (e.g. 10m).", show_default=False),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Print whole message bodies.")] = False,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
    with_content: WithContentOpt = False,
) -> None:
    """Follow a room's events live (one line each; with --json, one JSON object per line)."""
    options = setup(json_out, server, with_content)
    seconds = parse_duration(timeout) if timeout else None
    client = api(LONG_RETRY_SECONDS)
    room = client.call("Chatroom", {"id": room_id})["chatroom"]
    if after_seq is not None:
        cursor = after_seq
    elif from_start:
        cursor = 0
    else:
        cursor = room["lastEventSeq"]
    if not options.json:
        echo_err(
            f"watching room {q(room['id'])} ({clean(room['name'])}) after event #{cursor}; "
            "Ctrl-C to stop"
        )
    from chatroom.cli.live import follow_room

    printed = 0
    warned = False

    def on_event(event: dict[str, Any]) -> None:
        nonlocal printed, warned
        if options.json:
            emit_json(event_json(event, with_content=options.with_content))
        else:
            echo(event_line(event, full=full))
        sys.stdout.flush()
        printed += 1
        warned = False

    def on_drop(last: int) -> None:
        nonlocal warned
        if not options.json and not warned:  # once per outage
            echo_err(f"connection lost; resuming after event #{last} ...")
            warned = True

    last = cursor
    try:
        last = follow_room(
            client,
            room["id"],
            cursor,
            on_event=on_event,
            on_drop=on_drop,
            count=count,
            seconds=seconds,
        )
    finally:
        if not options.json and printed and count is None:
            echo_err(
                f"stopped after event #{last}; resume with: {program()} watch {q(room['id'])} "
                f"--after-seq={last}{server_suffix()}"
            )
