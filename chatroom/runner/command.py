"""The `chatroom agents` commands: `run` (a runner in the foreground) and `status` (what the
runners on this computer report). Light at import: the runner itself loads only when it runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from chatroom.cli.common import JsonOpt, RoomArg, ServerOpt, role_name, setup
from chatroom.cli.durations import parse_duration
from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import echo, emit_json

agents_app = typer.Typer(
    name="agents",
    help="Run the team's agents: `chatroom agents run <room> --harness claude --workdir .`",
    no_args_is_help=True,
    rich_markup_mode=None,
)

HarnessOpt = Annotated[
    str,
    typer.Option("--harness", help="claude, codex, opencode or command.", show_default=False),
]
WorkdirOpt = Annotated[
    Path,
    typer.Option("--workdir", help="The agents' working directory.", show_default=False),
]
RolesOpt = Annotated[
    list[str] | None,
    typer.Option("--role", help="Serve only this role (repeatable); default: every role."),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Passed to the harness.", show_default=False)
]
TaskTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--task-timeout",
        help="Stop a harness run that takes longer than this (90s, 30m, 2h); default: no limit.",
        show_default=False,
    ),
]
FreshOpt = Annotated[
    bool,
    typer.Option("--fresh-session", help="Start a new harness session for every task."),
]
CommandOpt = Annotated[
    str | None,
    typer.Option(
        "--command",
        help="With --harness=command: the program to run, with {prompt_file} (the prompt is "
        "also on its stdin).",
        show_default=False,
    ),
]


@agents_app.command("run")
def run(
    room_id: RoomArg,
    harness: HarnessOpt,
    workdir: WorkdirOpt,
    role: RolesOpt = None,
    model: ModelOpt = None,
    task_timeout: TaskTimeoutOpt = None,
    fresh_session: FreshOpt = False,
    command: CommandOpt = None,
    server: ServerOpt = None,
) -> None:
    """Serve the room's roles from this terminal: wait for each role's task, claim it, run the
    harness on it, check the handoff, nudge or flag it (docs/agents.md). Ctrl-C stops."""
    import asyncio

    from chatroom.cli.client import LONG_RETRY_SECONDS, Api
    from chatroom.cli.live import run_stoppable
    from chatroom.runner.harnesses import make
    from chatroom.runner.runner import Runner
    from chatroom.runner.slot import SlotConfig

    options = setup(False, server)
    directory = workdir.expanduser().resolve()
    if not directory.is_dir():
        raise LocalInputError(f"--workdir {str(workdir)!r} is not a directory.")
    adapter = make(harness, command=command)
    if command and adapter.name != "command":
        raise LocalInputError("--command is for --harness=command only.")
    config = SlotConfig(
        room_id=room_id,
        harness=adapter,
        workdir=directory,
        model=model,
        task_timeout=parse_duration(task_timeout) if task_timeout else None,
        fresh_session=fresh_session,
    )
    client = Api(options.target, retry_default=LONG_RETRY_SECONDS)
    client.require_token()
    runner = Runner(client, config, [role_name(r) for r in role or []])

    async def main() -> None:
        await run_stoppable(runner.run(), None, busy=runner.shutdown)

    asyncio.run(main())


@agents_app.command("status")
def status(room_id: RoomArg, json_out: JsonOpt = False) -> None:
    """What the runner serving this room on this computer last reported, per role."""
    from chatroom.runner.runner import read_status

    setup(json_out, None)
    data = read_status(room_id)
    alive = data is not None and _alive(int(data.get("pid", 0)))
    if json_out:
        emit_json({"room_id": room_id, "running": alive, "runner": data})
        return
    if data is None:
        echo(f"No runner has served room {room_id} on this computer.")
        return
    echo(
        f"Runner pid {data['pid']} ({'running' if alive else 'not running'}), harness "
        f"{data['harness']}, workdir {data['workdir']}"
    )
    for name, slot in data["slots"].items():
        extra = [f"task {slot['task_id']}"] if slot.get("task_id") else []
        if slot.get("activity"):
            extra.append(str(slot["activity"]))
        if slot.get("last_error"):
            extra.append(f"last error: {slot['last_error']}")
        if slot.get("circuit_open"):
            extra.append("circuit open: restart the runner to close it")
        echo(f"  {name}: {slot['state']}{' - ' + '; '.join(extra) if extra else ''}")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
