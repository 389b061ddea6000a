"""`chatroom agents run`: one foreground runner serving a room's roles, one slot per role.

The runner owns its slots for their whole life: it starts them, prints what they report, keeps
a status file for `chatroom agents status`, and on SIGTERM/SIGINT stops every harness gracefully
(the tasks stay with their roles and come back `resumed` to the next runner) and revokes the
slots' agent tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatroom.cli.client import Api
from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import q
from chatroom.runner.sessions import SessionStore, runner_dir
from chatroom.runner.slot import Slot, SlotConfig, SlotState

STATUS_DIR = "status"


def status_path(room_id: str) -> Path:
    return runner_dir() / STATUS_DIR / f"{room_id}.json"


def read_status(room_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(room_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Runner:
    def __init__(self, client: Api, config: SlotConfig, roles: list[str]) -> None:
        self.client = client
        self.config = config
        self.roles = roles
        self.sessions = SessionStore()
        self.slots: list[Slot] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        room = (await self.client.acall("Chatroom", {"id": self.config.room_id}))["chatroom"]
        team = list(room["teamRoles"])
        unknown = [r for r in self.roles if r not in team]
        if unknown:
            raise LocalInputError(
                f"--role {', '.join(q(r) for r in unknown)} is not in this room's team "
                f"({', '.join(q(r) for r in team)})."
            )
        roles = self.roles or team
        self.slots = [
            Slot(self.config, self.client, role, self.sessions, self._report) for role in roles
        ]
        self._say(
            f"serving {', '.join(roles)} in room {self.config.room_id} with "
            f"{self.config.harness.name} in {self.config.workdir} (Ctrl-C stops)"
        )
        self._tasks = [asyncio.create_task(self._serve(slot)) for slot in self.slots]
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        await self._close()

    async def _serve(self, slot: Slot) -> None:
        """A slot that fails for a reason nobody foresaw says so and stops; the others go on."""
        try:
            await slot.run()
        except Exception as exc:
            slot.last_error = f"{type(exc).__name__}: {exc}"
            slot.state = SlotState.STOPPED
            self._report(slot, f"STOPPED after an unexpected error ({slot.last_error})")

    async def shutdown(self) -> None:
        """Stop every harness gracefully, then the slots; revoke their tokens."""
        self._say("stopping: the agents get SIGTERM; their tasks stay with their roles")
        await asyncio.gather(*(slot.stop_harness() for slot in self.slots))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close()

    async def _close(self) -> None:
        await asyncio.gather(*(slot.close() for slot in self.slots))
        self._say("stopped")

    # --- output ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        sys.stdout.write(f"[runner] {text}\n")
        sys.stdout.flush()

    def _report(self, slot: Slot, text: str) -> None:
        self._say(f"{slot.role}: {text}")
        self._write_status()

    def _write_status(self) -> None:
        data = {
            "room_id": self.config.room_id,
            "pid": os.getpid(),
            "harness": self.config.harness.name,
            "workdir": str(self.config.workdir),
            "updated_at": time.time(),
            "slots": {
                slot.role: {
                    "state": slot.state.value,
                    "task_id": slot.task_id,
                    "activity": slot.activity,
                    "last_error": slot.last_error,
                    "failures": len(slot.failures),
                    "circuit_open": slot.state is SlotState.CIRCUIT_OPEN,
                }
                for slot in self.slots
            },
        }
        path = status_path(self.config.room_id)
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
            os.replace(tmp, path)
