"""`--json`: every command prints one JSON object with exactly the keys docs/cli.md lists."""

from __future__ import annotations

import hashlib
import json
import re
import signal
from pathlib import Path

from tests.cli.support import REPO_ROOT, Cli, file_mode, until_waiting
from tests.support.server import LiveServer

ERROR_KEYS = {"code", "message", "exit_code", "valid_targets", "retry_cmd"}
WAIT_KEYS = {"event", "room_id", "role", "task", "message", "queued_behind", "next", "recovery"}
NEXT_KEYS = {
    "default_target",
    "allowed_targets",
    "complete_cmd",
    "classify_cmds",
    "complete_cmds",
    "wait_cmd",
}
TASK_REF_KEYS = {"room_id", "task_id", "status", "queue_position"}


async def test_room_commands(cli: Cli) -> None:
    created = await cli.json("create", "--name", "JSON room")
    assert set(created) == {
        "room_id",
        "name",
        "status",
        "team_id",
        "roles",
        "entry_point",
        "wait_cmds",
        "agent_tokens",
    }
    room = created["room_id"]
    assert created["roles"] == ["builder", "reviewer"] and created["agent_tokens"] is None
    assert created["wait_cmds"]["builder"] == f'chatroom wait-for-message "{room}" --role="builder"'

    listed = await cli.json("list")
    assert set(listed) == {"rooms"}
    assert set(listed["rooms"][0]) == {
        "room_id",
        "name",
        "status",
        "team_id",
        "roles",
        "entry_point",
        "created_at",
    }

    sent = await cli.json("send", room, "--message", "hello")
    assert set(sent) == {"room_id", "message_id", "task_id", "task_status", "queue_position"}
    assert sent["task_status"] == "pending"

    prompt = await cli.json("prompt", room, "--role", "builder")
    assert set(prompt) == {
        "room_id",
        "role",
        "allowed_targets",
        "default_target",
        "wait_cmd",
        "prompt",
    }
    assert prompt["allowed_targets"] == ["reviewer", "user"]

    done = await cli.json("complete", room)
    assert done == {"room_id": room, "status": "completed"}


async def test_the_agent_loop(cli: Cli) -> None:
    room = await cli.create_room()
    sent = await cli.send(room, "Explain the plan.")

    timeout = await cli.json("wait-for-message", room, "--role", "reviewer", "--timeout", "1s")
    assert set(timeout) == WAIT_KEYS and set(timeout["next"]) == NEXT_KEYS
    assert timeout["event"] == "timeout" and timeout["task"] is None
    assert timeout["next"]["wait_cmd"].endswith('--role="reviewer" --timeout="1s"')

    got = await cli.json("wait-for-message", room, "--role", "builder")
    assert set(got) == WAIT_KEYS and set(got["next"]) == NEXT_KEYS
    assert set(got["recovery"]) == {"prompt_cmd"}
    assert got["event"] == "task"
    assert got["task"] == {
        "id": sent["task_id"],
        "status": "in_progress",
        "resumed": False,
        "attempt": 1,
    }
    # No message body unless asked: its size and hash identify it.
    assert got["message"] == {
        "id": sent["message_id"],
        "sender": "user",
        "type": "message",
        "chars": len("Explain the plan."),
        "sha256": hashlib.sha256(b"Explain the plan.").hexdigest(),
    }
    assert got["queued_behind"] == 0
    # Unclassified: no default yet; the command for each kind (no follow_up: nothing before).
    assert got["next"]["default_target"] is None and got["next"]["complete_cmd"] is None
    assert set(got["next"]["classify_cmds"]) == {"question", "new_feature"}
    assert got["next"]["complete_cmds"] == {
        "question": f'chatroom task-complete "{room}" --role="builder" --next-role="user" '
        "<< 'CHATROOM_MESSAGE_END'",
        "new_feature": f'chatroom task-complete "{room}" --role="builder" '
        "--next-role=\"reviewer\" << 'CHATROOM_MESSAGE_END'",
    }
    assert got["next"]["allowed_targets"] == ["reviewer", "user"]

    resumed = await cli.json("wait-for-message", room, "--role", "builder", "--with-content")
    assert resumed["task"]["resumed"] is True
    assert resumed["message"]["content"] == "Explain the plan."

    classified = await cli.json(
        "task-started", room, "--role", "builder", "--classification", "question"
    )
    assert set(classified) == {
        "room_id",
        "role",
        "message_id",
        "classification",
        "effective_classification",
        "target",
        "complete_cmd",
        "wait_cmd",
    }
    assert classified["classification"] == "question" and classified["target"] == "user"
    assert classified["complete_cmd"] == got["next"]["complete_cmds"]["question"]
    after = await cli.json("wait-for-message", room, "--role", "builder")
    assert after["next"]["default_target"] == "user" and after["next"]["classify_cmds"] is None
    assert after["next"]["complete_cmd"] == classified["complete_cmd"]

    handed = await cli.json(
        "task-complete", room, "--role", "builder", "--next-role", "user", "--message", "It is."
    )
    assert set(handed) == {
        "event",
        "room_id",
        "role",
        "task_id",
        "handoff_message_id",
        "target",
        "new_task_id",
        "lines",
        "chars",
        "wait_cmd",
    }
    assert handed["event"] == "handed_off" and handed["task_id"] == sent["task_id"]
    assert handed["new_task_id"] is None and handed["lines"] == 1 and handed["chars"] == 6


async def test_superseded_and_signal_ends(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    older = await cli.start("wait-for-message", room, "--role", "builder", "--json")
    await until_waiting(live_server, cli.token(), room, "builder")
    newer = await cli.start("wait-for-message", room, "--role", "builder", "--json")
    superseded = (await older.finish()).ok().json()
    assert set(superseded) == WAIT_KEYS
    assert superseded["event"] == "superseded" and superseded["next"]["wait_cmd"] is None
    await until_waiting(live_server, cli.token(), room, "builder")
    newer.signal(signal.SIGTERM)
    stopped = (await newer.finish()).ok().json()
    assert stopped["event"] == "signal" and set(stopped) == WAIT_KEYS


async def test_backlog(cli: Cli) -> None:
    room = await cli.create_room()
    added = await cli.json("backlog", "add", room, "--message", "Later: tidy up")
    assert set(added) == TASK_REF_KEYS and added["status"] == "backlog"
    other = await cli.json("backlog", "add", room, "--message", "Later: more")

    listed = await cli.json("backlog", "list", room)
    assert set(listed) == {"room_id", "tasks"}
    assert [set(t) for t in listed["tasks"]] == [
        {"task_id", "status", "queue_position", "created_at", "chars"}
    ] * 2
    with_content = await cli.json("backlog", "list", room, "--with-content")
    assert with_content["tasks"][0]["content"] == "Later: tidy up"

    moved = await cli.json("backlog", "move", room, added["task_id"])
    assert set(moved) == TASK_REF_KEYS and moved["status"] == "pending"
    completed = await cli.json("backlog", "complete", room, other["task_id"])
    assert set(completed) == TASK_REF_KEYS and completed["status"] == "completed"
    third = await cli.json("backlog", "add", room, "--message", "Maybe")
    cancelled = await cli.json("backlog", "cancel", room, third["task_id"])
    assert set(cancelled) == TASK_REF_KEYS and cancelled["status"] == "cancelled"


async def test_watch_prints_one_object_per_event(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Watch me.")
    result = (await cli.run("watch", room, "--from-start", "--count", "3", "--json")).ok()
    events = [json.loads(line) for line in result.out_lines]
    assert len(events) == 3
    for event in events:
        assert set(event) == {"seq", "kind", "created_at", "message", "task", "participant", "room"}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    messages = [e["message"] for e in events if e["message"]]
    for message in messages:
        assert set(message) == {"id", "sender", "target", "type", "classification", "chars"}


async def test_auth_commands(live_server: LiveServer, tmp_path: Path) -> None:
    cli = Cli(live_server.base_url, tmp_path / "cfg")
    login = await cli.json("auth", "login", "--guest", "--name", "Jay")
    assert set(login) == {"server", "user_id", "display_name", "guest", "login_file"}
    assert login["display_name"] == "Jay" and login["guest"] is True
    path = Path(login["login_file"])
    assert file_mode(path) == 0o600 and file_mode(path.parent) == 0o700

    status = await cli.json("auth", "status")
    assert set(status) == {"server", "user_id", "display_name", "token_source"}
    assert status["token_source"] == "login_file" and status["user_id"] == login["user_id"]

    logout = await cli.json("auth", "logout")
    assert set(logout) == {"server", "revoked", "session_id", "login_file_removed"}
    assert logout["revoked"] is True and logout["login_file_removed"] is True
    assert file_mode(path) is None


async def test_errors_are_one_json_object(anon: Cli) -> None:
    result = await anon.run("list", "--json")
    assert result.rc == 3
    assert set(result.json()) == {"error"}
    assert set(result.json()["error"]) == ERROR_KEYS
    assert result.json()["error"]["code"] == "UNAUTHENTICATED"


def test_docs_list_every_command() -> None:
    """docs/cli.md documents each command's --json keys (a command added without docs fails)."""
    doc = (REPO_ROOT / "docs" / "cli.md").read_text()
    table = doc.split("## `--json`", 1)[1]
    for command in [
        "auth login",
        "auth logout",
        "auth status",
        "create",
        "list",
        "complete",
        "send",
        "wait-for-message",
        "task-complete",
        "task-started",
        "backlog list",
        "prompt",
        "watch",
    ]:
        assert re.search(rf"^\| `{re.escape(command)}", table, re.M), command
