"""Agent slots and machines as the `agents` and `machine` commands print them: one line per slot
for people, snake_case keys for `--json`. Pure: no network, no asyncio."""

from __future__ import annotations

import re
from typing import Any

from chatroom.cli.output import commands

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(data: dict[str, Any]) -> dict[str, Any]:
    """camelCase keys (as GraphQL names them) -> snake_case (as every `--json` of the CLI)."""
    return {_CAMEL.sub("_", key).lower(): value for key, value in data.items()}


def slot_json(view: dict[str, Any], online: bool | None) -> dict[str, Any]:
    return {**snake(view), "machine_online": online}


def machine_json(machine: dict[str, Any], this_id: str | None) -> dict[str, Any]:
    out = snake({k: v for k, v in machine.items() if k != "agents"})
    out["this_computer"] = machine["id"] == this_id
    out["agents"] = [slot_json(a, machine["online"]) for a in machine.get("agents", [])]
    return out


def slot_line(view: dict[str, Any], online: bool | None, *, room: bool = False) -> str:
    """`builder: WORKING (desired RUNNING) on laptop, claude in /src - task ...; activity`.
    `room`: name the slot `<room>/<role>` (a machine's slots span rooms)."""
    where = "online" if online else "offline" if online is False else "online unknown"
    name = f"{view['chatroomId']}/{view['role']}" if room else view["role"]
    head = (
        f"{name}: {view['state']} (desired {view['desiredState']}) on {view['machineName']} "
        f"({where}), {view['harness']} in {view['workdir']}"
    )
    extra = []
    if view.get("taskId"):
        extra.append(f"task {view['taskId']}")
    if view.get("activity"):
        extra.append(str(view["activity"]))
    if view.get("lastError"):
        extra.append(f"last error: {view['lastError']}")
    restart = commands().agents("restart", view["chatroomId"], view["role"])
    if view["state"] == "CIRCUIT_OPEN":
        extra.append(f"circuit open: `{restart}` closes it")
    elif view["state"] == "NEEDS_ATTENTION":
        extra.append(f"`{restart}` tries the task again")
    return head + (" - " + "; ".join(extra) if extra else "")


def harness_list(machine: dict[str, Any]) -> str:
    return ", ".join(
        f"{h['name']} {h['version']}" if h.get("version") else h["name"]
        for h in machine["harnesses"]
    )
