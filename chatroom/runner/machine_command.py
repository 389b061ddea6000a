"""The `chatroom machine` commands: `start` (this computer's daemon, in the foreground), `list`
(your machines) and `status` (this computer's machine and its agents). Light at import: the
daemon loads only when it runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chatroom.cli.common import JsonOpt, ServerOpt, api, setup
from chatroom.cli.output import OPTIONS, commands, echo, emit_json

machine_app = typer.Typer(
    name="machine",
    help="This computer as a machine that runs agents: `chatroom machine start`, then "
    "`chatroom agents start <room> --harness claude --workdir DIR` from anywhere.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="The machine's name (default: its last name, or the host name).",
        show_default=False,
    ),
]


@machine_app.command("start")
def start(name: NameOpt = None, server: ServerOpt = None) -> None:
    """Run this computer's daemon in the foreground: it registers the machine, reports the
    harnesses on PATH, and runs the agents set to run here (`chatroom agents start`) until
    stopped. SIGTERM / Ctrl-C stops the agents gracefully; they start again with the daemon."""
    import asyncio

    from chatroom.cli.client import LONG_RETRY_SECONDS, Api
    from chatroom.cli.live import run_stoppable
    from chatroom.runner.machine import Daemon

    options = setup(False, server)
    client = Api(options.target, retry_default=LONG_RETRY_SECONDS)
    client.require_token()
    daemon = Daemon(client, name.strip()[:100] if name and name.strip() else None)

    async def main() -> None:
        await run_stoppable(daemon.run(), None, busy=daemon.shutdown)

    asyncio.run(main())


def _machine_lines(machine: dict[str, Any], this_id: str | None) -> None:
    from chatroom.runner.slot_view import harness_list, slot_line

    here = " (this computer)" if machine["id"] == this_id else ""
    state = "online" if machine["online"] else f"offline (last seen {machine['lastSeenAt']})"
    echo(f"{machine['name']} ({machine['id']}){here}: {state}; harnesses: {harness_list(machine)}")
    for slot in machine["agents"]:
        echo(f"  {slot_line(slot, machine['online'], room=True)}")
    if not machine["agents"]:
        echo("  no agents yet (`chatroom agents start --help` says how to set some to run)")


@machine_app.command("list")
def list_machines(json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """Your machines: name, id, online, harnesses, and the agents set to run on each."""
    from chatroom.runner.machine_id import this_machine
    from chatroom.runner.slot_view import machine_json

    options = setup(json_out, server)
    mine = this_machine(options.target.base_url)
    this_id = mine["machine_id"] if mine else None
    machines = api().call("Machines")["machines"]
    if OPTIONS.json:
        emit_json({"machines": [machine_json(m, this_id) for m in machines]})
        return
    for machine in machines:
        _machine_lines(machine, this_id)
    if not machines:
        echo(f"No machines yet: run `{commands().machine_start()}` on a computer to add it.")


@machine_app.command("status")
def status(json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """This computer's machine on the server, and its agents."""
    from chatroom.runner.machine_id import this_machine
    from chatroom.runner.slot_view import machine_json

    options = setup(json_out, server)
    base = options.target.base_url
    mine = this_machine(base)
    found = None
    if mine is not None:
        machines = api().call("Machines")["machines"]
        found = next((m for m in machines if m["id"] == mine["machine_id"]), None)
    if OPTIONS.json:
        this_id = mine["machine_id"] if mine else None
        emit_json({"server": base, "machine": machine_json(found, this_id) if found else None})
        return
    if found is None:
        echo(
            f"This computer has no machine at {base}: `{commands().machine_start()}` "
            "registers it and runs its agents."
        )
        return
    _machine_lines(found, found["id"])
