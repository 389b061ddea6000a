"""Rooms and user messages: create, list, complete, send, prompt."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from chatroom.cli import config
from chatroom.cli.common import (
    JsonOpt,
    MessageFileOpt,
    MessageOpt,
    RoleOpt,
    RoomArg,
    ServerOpt,
    api,
    role_name,
    setup,
)
from chatroom.cli.errors import LocalInputError
from chatroom.cli.message_input import read_body
from chatroom.cli.output import (
    commands,
    echo,
    emit_json,
    program,
    q,
    send_cmd,
    server_suffix,
    wait_cmd,
)
from chatroom.cli.render import clean, team_of
from chatroom.guidance import role_guidance

TEAMS = ("pair", "squad", "duo", "solo")


def create(
    team: Annotated[
        str | None,
        typer.Option(
            "--team",
            help="A built-in team: pair (default), squad, duo or solo.",
            show_default=False,
        ),
    ] = None,
    roles: Annotated[
        str | None,
        typer.Option(
            "--roles", help="A custom team, comma-separated, in order.", show_default=False
        ),
    ] = None,
    entry_point: Annotated[
        str | None,
        typer.Option(
            "--entry-point",
            help="With --roles: the role that takes the user's requests (default: the first).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The room's name.", show_default=False)
    ] = None,
    agent_tokens: Annotated[
        bool,
        typer.Option(
            "--agent-tokens",
            help="Also mint one token per role that acts only as that role in this room.",
        ),
    ] = False,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Create a room; prints its id and one ready-to-run wait command per role."""
    options = setup(json_out, server)
    variables: dict[str, object] = {"idempotencyKey": f"cli-create-{uuid.uuid4()}"}
    if roles is not None:
        if team is not None:
            raise LocalInputError("Give --team or --roles, not both.")
        role_list = [r.strip().lower() for r in roles.split(",") if r.strip()]
        if not role_list:
            raise LocalInputError("--roles is empty: list the roles, e.g. --roles=builder,tester.")
        variables["roles"] = role_list
        if entry_point is not None:
            variables["entryPoint"] = role_name(entry_point)
    else:
        if entry_point is not None:
            raise LocalInputError("--entry-point goes with --roles (a custom team).")
        chosen = (team or "pair").strip().lower()
        if chosen not in TEAMS:
            raise LocalInputError(
                f"--team {team!r} is not a built-in team: use pair, squad, duo or solo, or list "
                "your own roles with --roles=a,b --entry-point=a."
            )
        variables["teamId"] = chosen
    if name is not None:
        variables["name"] = name
    client = api()
    room = client.call("CreateChatroom", {"input": variables})["createChatroom"]
    room_id = room["id"]
    tokens: dict[str, str] | None = None
    if agent_tokens:
        tokens = {}
        for role in room["teamRoles"]:
            minted = client.call(
                "CreateAgentToken", {"chatroomId": room_id, "role": role}, retry="connect"
            )
            tokens[role] = minted["createAgentToken"]["token"]
    waits = {
        role: (f"CHATROOM_TOKEN={q(tokens[role])} " if tokens else "") + wait_cmd(room_id, role)
        for role in room["teamRoles"]
    }
    if options.json:
        emit_json(
            {
                "room_id": room_id,
                "name": room["name"],
                "status": room["status"].lower(),
                "team_id": room["teamId"],
                "roles": room["teamRoles"],
                "entry_point": room["entryPoint"],
                "wait_cmds": waits,
                "agent_tokens": tokens,
            }
        )
        return
    echo(
        f"Created room {q(room_id)} ({clean(room['name'])}): team {room['teamId']} with roles "
        f"{', '.join(room['teamRoles'])}; {room['entryPoint']} takes the user's requests."
    )
    if tokens:
        echo("Each command carries its role's agent token (shown once; keep it private).")
    echo("Start one agent per role; each runs its command in the foreground:")
    for command in waits.values():
        echo(command)
    echo(f"Then send the first request: {send_cmd(room_id)}")


def list_rooms(
    all_rooms: Annotated[
        bool, typer.Option("--all", help="Include completed rooms (default: active only).")
    ] = False,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """List my rooms, newest first."""
    options = setup(json_out, server)
    status = None if all_rooms else "ACTIVE"
    rooms = api().call("Chatrooms", {"status": status})["chatrooms"]
    if options.json:
        emit_json(
            {
                "rooms": [
                    {
                        "room_id": r["id"],
                        "name": r["name"],
                        "status": r["status"].lower(),
                        "team_id": r["teamId"],
                        "roles": r["teamRoles"],
                        "entry_point": r["entryPoint"],
                        "created_at": r["createdAt"],
                    }
                    for r in rooms
                ]
            }
        )
        return
    if not rooms:
        echo(
            "No active rooms. Create one with `chatroom create`."
            if not all_rooms
            else "No rooms. Create one with `chatroom create`."
        )
        return
    for r in rooms:
        echo(
            f"{r['id']}  {r['status'].lower():<9}  {r['teamId']:<6}  {r['createdAt'][:16]}  "
            f"{clean(r['name'])}"
        )


def complete(room_id: RoomArg, json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """Mark a room completed (its open tasks are cancelled)."""
    options = setup(json_out, server)
    room = api().call("CompleteChatroom", {"chatroomId": room_id})["completeChatroom"]
    if options.json:
        emit_json({"room_id": room["id"], "status": room["status"].lower()})
        return
    echo(f"Room {q(room['id'])} is completed; its open tasks were cancelled.")


def send(
    room_id: RoomArg,
    message: MessageOpt = None,
    message_file: MessageFileOpt = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Address a role other than the entry point.", show_default=False),
    ] = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Send a message as the user (it becomes a task, or joins the queue)."""
    options = setup(json_out, server)
    body = read_body(
        message,
        message_file,
        example=[
            f"{program()} send {q(room_id)}{server_suffix()} << 'CHATROOM_MESSAGE_END'",
            "<your request>",
            "CHATROOM_MESSAGE_END",
        ],
    )
    variables: dict[str, object] = {
        "chatroomId": room_id,
        "content": body.text,
        "idempotencyKey": f"cli-send-{uuid.uuid4()}",
    }
    if to is not None:
        variables["targetRole"] = role_name(to)
    result = api().call("SendMessage", {"input": variables})["sendMessage"]
    task = result.get("task") or {}
    status = (task.get("status") or "").lower() or None
    if options.json:
        emit_json(
            {
                "room_id": room_id,
                "message_id": result["message"]["id"],
                "task_id": task.get("id"),
                "task_status": status,
                "queue_position": task.get("queuePosition"),
            }
        )
        return
    if status == "queued":
        where = f"queued at position {task.get('queuePosition')}: it starts when the team is free"
    elif status:
        where = f"{status}: the team picks it up now"
    else:
        where = "no task was created"
    echo(f"Message {q(result['message']['id'])} sent; task {q(task.get('id') or '-')} is {where}.")


def prompt(
    room_id: RoomArg,
    role: RoleOpt,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout", help="Repeated in the wait command it prints.", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Print the full guidance for a role (for an agent that lost its context)."""
    options = setup(json_out, server)
    client = api()
    info = client.call("RolePrompt", {"chatroomId": room_id, "role": role_name(role)})["rolePrompt"]
    who = info["role"]
    facts = client.call("DeliveryContext", {"chatroomId": room_id, "role": who})
    style = commands(timeout)
    # The same guidance the server serves, with this agent's own way of running the CLI.
    text = role_guidance(team_of(room_id, facts["chatroom"]), who, style)
    config.mark_seen(options.target.base_url, room_id, who)
    if options.json:
        emit_json(
            {
                "room_id": room_id,
                "role": who,
                "allowed_targets": info["allowedTargets"],
                "default_target": info["defaultTarget"],
                "wait_cmd": style.wait(room_id, who),
                "prompt": text,
            }
        )
        return
    echo(text)
    echo("")
    echo("Run this now, in the foreground, to wait for your next task:")
    echo(style.wait(room_id, who))
