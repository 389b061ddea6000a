"""Which machine this computer is, per server: `<config dir>/machine.json`, {server URL:
{machine_id, name, agents_run: {machine_id, name}}} (0600). Written by the daemon when it
registers; read by `agents start` (its default machine) and `machine status`.

`agents run` registers a machine of its own (`agents_run`, named "<host> (agents run)"): were it
this computer's `machine start` machine, both daemons would claim the room's slots and the last
claim would win at random. On its own machine, its startAgents moves the slots there and the
`machine start` daemon sees them leave and stops them. Light: no network, no asyncio."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from chatroom.cli.config import config_dir, write_private
from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import commands

MACHINE_FILE = "machine.json"


def machine_path() -> Path:
    return config_dir() / MACHINE_FILE


def _read() -> dict[str, Any]:
    try:
        data = json.loads(machine_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


AGENTS_RUN = "agents_run"  # the entry `agents run` registers, beside `machine start`'s
RUN_SUFFIX = " (agents run)"
MAX_NAME = 100


def this_machine(server: str, *, run: bool = False) -> dict[str, str] | None:
    """{machine_id, name} of this computer's machine on `server` (`run`: the one `agents run`
    uses), or None (never registered)."""
    entry = _read().get(server)
    if run and isinstance(entry, dict):
        entry = entry.get(AGENTS_RUN)
    if isinstance(entry, dict) and isinstance(entry.get("machine_id"), str):
        return {"machine_id": entry["machine_id"], "name": str(entry.get("name") or "")}
    return None


def remember_machine(server: str, machine_id: str, name: str, *, run: bool = False) -> None:
    """Keeps the server's other entry (`machine start`'s or `agents run`'s) as it is."""
    data = _read()
    entry = data.get(server)
    entry = dict(entry) if isinstance(entry, dict) else {}
    if run:
        entry[AGENTS_RUN] = {"machine_id": machine_id, "name": name}
    else:
        entry.update(machine_id=machine_id, name=name)
    data[server] = entry
    write_private(machine_path(), data)


def default_name(*, run: bool = False) -> str:
    """A machine's name unless --name says otherwise: the host name (at most 100 characters);
    `agents run`'s machine adds " (agents run)"."""
    host = socket.gethostname() or "this computer"
    if run:
        return host[: MAX_NAME - len(RUN_SUFFIX)] + RUN_SUFFIX
    return host[:MAX_NAME]


def pick_machine(machines: list[dict[str, Any]], spec: str | None, server: str) -> dict[str, Any]:
    """The machine `--machine` names (an id, or a name of one of yours); without it, this
    computer's. Raises LocalInputError saying what to run instead."""
    if spec is None:
        mine = this_machine(server)
        found = [m for m in machines if mine and m["id"] == mine["machine_id"]]
        if not found:
            raise LocalInputError(
                f"This computer has no machine registered at {server}: run "
                f"`{commands().machine_start()}` first (it keeps running: the daemon that runs "
                "the agents), or pass --machine with one of yours (`chatroom machine list`)."
            )
        return found[0]
    found = [m for m in machines if m["id"] == spec] or [m for m in machines if m["name"] == spec]
    if len(found) == 1:
        return found[0]
    names = ", ".join(f"{m['name']} ({m['id']})" for m in machines) or "none yet"
    if found:
        raise LocalInputError(
            f"--machine {spec!r} names {len(found)} of your machines; pass its id instead: {names}."
        )
    raise LocalInputError(f"--machine {spec!r} is not one of your machines: {names}.")
