"""The `chatroom agents` commands: `start`, `stop`, `restart` (the slots' desired state on the
server, which the machine daemons follow), `status` (the server's view of the room's slots), and
`run` (a daemon in the foreground serving one room). Light at import: the daemon itself loads
only when it runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from chatroom.cli.client import Api
from chatroom.cli.common import JsonOpt, RoomArg, ServerOpt, api, role_name, setup
from chatroom.cli.durations import parse_duration
from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import OPTIONS, commands, echo, emit_json

agents_app = typer.Typer(
    name="agents",
    help="Run the team's agents: `chatroom agents run <room> --harness claude --workdir .` in "
    "one terminal, or `chatroom machine start` once and `chatroom agents start <room> ...`.",
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
StartWorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        help="The agents' working directory (on the machine that runs them); default: the "
        "current directory.",
        show_default=False,
    ),
]
RolesOpt = Annotated[
    list[str] | None,
    typer.Option("--role", help="Only this role (repeatable); default: every role."),
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


MachineOpt = Annotated[
    str | None,
    typer.Option(
        "--machine",
        help="The machine that runs them (a name or id; default: this computer's).",
        show_default=False,
    ),
]


def _roles(role: list[str] | None) -> list[str] | None:
    return [role_name(r) for r in role] if role else None


def _slot_fields(
    harness: str,
    workdir: Path,
    model: str | None,
    task_timeout: str | None,
    fresh_session: bool,
    command: str | None,
    *,
    here: bool,
) -> dict[str, Any]:
    """StartAgentsInput's slot options, checked here first. `here`: the machine is this
    computer, so the working directory must exist (relative paths are taken from here)."""
    from chatroom.runner.harnesses import make

    adapter = make(harness, command=command)
    if command and adapter.name != "command":
        raise LocalInputError("--command is for --harness=command only.")
    directory = workdir.expanduser()
    if here:
        directory = directory.resolve()
        if not directory.is_dir():
            raise LocalInputError(f"--workdir {str(workdir)!r} is not a directory.")
    elif not directory.is_absolute():
        raise LocalInputError(f"--workdir {str(workdir)!r}: give an absolute path on that machine.")
    seconds = parse_duration(task_timeout) if task_timeout else None
    return {
        "harness": adapter.name,
        "workdir": str(directory),
        "model": model,
        "command": command,
        "freshSession": fresh_session,
        "taskTimeoutSeconds": max(1, math.ceil(seconds)) if seconds else None,
    }


def _online(client: Api) -> dict[str, bool]:
    """Your machines' ids -> online (another person's machine is not yours to see)."""
    return {m["id"]: m["online"] for m in client.call("Machines")["machines"]}


def _print_slots(room_id: str, slots: list[dict[str, Any]], online: dict[str, bool]) -> None:
    from chatroom.runner.slot_view import slot_json, slot_line

    if OPTIONS.json:
        emit_json(
            {
                "room_id": room_id,
                "agents": [slot_json(s, online.get(s["machineId"])) for s in slots],
            }
        )
        return
    for slot in slots:
        echo(slot_line(slot, online.get(slot["machineId"])))


@agents_app.command("start")
def start(
    room_id: RoomArg,
    harness: HarnessOpt,
    workdir: StartWorkdirOpt = None,
    role: RolesOpt = None,
    machine: MachineOpt = None,
    model: ModelOpt = None,
    task_timeout: TaskTimeoutOpt = None,
    fresh_session: FreshOpt = False,
    command: CommandOpt = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Set the room's agents (every role, or the --role ones) to run on a machine: the
    machine's daemon (`chatroom machine start`) starts them and keeps them running."""
    from chatroom.runner.machine_id import pick_machine, this_machine

    options = setup(json_out, server)
    client = api()
    machines = client.call("Machines")["machines"]
    chosen = pick_machine(machines, machine, options.target.base_url)
    mine = this_machine(options.target.base_url)
    here = mine is not None and mine["machine_id"] == chosen["id"]
    # No --workdir: the directory this runs in (SPEC §10), resolved and checked here.
    directory = Path.cwd() if workdir is None else workdir
    fields = _slot_fields(
        harness,
        directory,
        model,
        task_timeout,
        fresh_session,
        command,
        here=here or workdir is None,
    )
    variables = {
        "input": {
            "chatroomId": room_id,
            "roles": _roles(role),
            "machineId": chosen["id"],
            **fields,
        }
    }
    slots = client.call("StartAgents", variables)["startAgents"]
    online = {m["id"]: m["online"] for m in machines}
    _print_slots(room_id, slots, online)
    if not OPTIONS.json and not chosen["online"]:
        where = "on this computer" if here else f"on {chosen['name']}"
        echo(
            f"Machine {chosen['name']} is offline: run `{commands().machine_start()}` {where} "
            "to start them."
        )


@agents_app.command("stop")
def stop(
    room_id: RoomArg, role: RolesOpt = None, json_out: JsonOpt = False, server: ServerOpt = None
) -> None:
    """Stop the room's agents (every role, or the --role ones): each harness gets SIGTERM, its
    token is revoked, and its task stays with the role."""
    setup(json_out, server)
    client = api()
    data = client.call("StopAgents", {"input": {"chatroomId": room_id, "roles": _roles(role)}})
    _print_slots(room_id, data["stopAgents"], _online(client))


@agents_app.command("restart")
def restart(
    room_id: RoomArg, role: RolesOpt = None, json_out: JsonOpt = False, server: ServerOpt = None
) -> None:
    """Restart the room's agents (every role, or the --role ones); closes an open circuit. A
    task in progress comes back to the new harness `resumed`."""
    setup(json_out, server)
    client = api()
    data = client.call("RestartAgents", {"input": {"chatroomId": room_id, "roles": _roles(role)}})
    _print_slots(room_id, data["restartAgents"], _online(client))


@agents_app.command("status")
def status(room_id: RoomArg, json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """The server's view of the room's agents: per role the machine (online or not), harness,
    desired and reported state, task, activity and last error."""
    setup(json_out, server)
    client = api()
    slots = client.call("ChatroomAgents", {"id": room_id})["chatroom"]["agents"]
    _print_slots(room_id, slots, _online(client))
    if not slots and not OPTIONS.json:
        echo(f"No agents in room {room_id} yet (see `chatroom agents start --help`).")


def stop_command(room_id: str, roles: list[str]) -> str:
    """What stops the roles `agents run` served, and only them: the room's other slots may
    run on other machines."""
    return commands().agents("stop", room_id, *roles)


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
    """Serve the room's roles from this terminal: registers this computer's `agents run`
    machine ("<host> (agents run)", apart from `machine start`'s, whose daemon lets the roles
    go), sets the roles to run on it, and runs them here (a daemon for this room only: wait for
    each role's task, claim it, run the harness, check the handoff, nudge or flag it;
    docs/agents.md).
    Ctrl-C stops the agents and marks them stopped."""
    import asyncio

    from chatroom.cli.client import LONG_RETRY_SECONDS, SHORT_RETRY_SECONDS
    from chatroom.cli.errors import CliError
    from chatroom.cli.live import run_stoppable
    from chatroom.runner.machine import Daemon

    options = setup(False, server)
    fields = _slot_fields(harness, workdir, model, task_timeout, fresh_session, command, here=True)
    client = Api(options.target, retry_default=LONG_RETRY_SECONDS)
    client.require_token()
    daemon = Daemon(client, one_room=True, run=True)
    served: list[str] = []  # the roles this daemon set to run here

    async def stop_slots() -> None:
        """Mark stopped the slots this daemon still serves (not those another daemon took
        over: a second `agents run` for the room goes on)."""
        try:
            room = await client.acall("ChatroomAgents", {"id": room_id}, budget=SHORT_RETRY_SECONDS)
            roles = [
                view["role"]
                for view in room["chatroom"]["agents"]
                if view["id"] in (daemon.only or ()) and view["daemonId"] == daemon.daemon_id
            ]
            if roles:
                variables = {"input": {"chatroomId": room_id, "roles": roles}}
                await client.acall("StopAgents", variables, budget=SHORT_RETRY_SECONDS)
        except CliError as exc:
            daemon.say(
                f"could not mark the agents stopped on the server ({exc.message}); run "
                f"`{stop_command(room_id, served)}`"
            )

    async def serve() -> None:
        await daemon.register()
        variables = {
            "input": {
                "chatroomId": room_id,
                "roles": _roles(role),
                "machineId": daemon.machine_id,
                **fields,
            }
        }
        slots = (await client.acall("StartAgents", variables))["startAgents"]
        daemon.only = {s["id"] for s in slots}
        served[:] = [s["role"] for s in slots]
        daemon.on_stop = stop_slots
        roles = ", ".join(s["role"] for s in slots)
        daemon.say(
            f"serving {roles} in room {room_id} with {fields['harness']} in {fields['workdir']}"
        )
        await daemon.run()

    async def main() -> None:
        await run_stoppable(serve(), None, busy=daemon.shutdown)

    asyncio.run(main())
