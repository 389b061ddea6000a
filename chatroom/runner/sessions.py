"""Harness session ids per (server, room, role, harness), kept in the config dir so a restarted
runner resumes each role's conversation. One small JSON file, written atomically (0600)."""

from __future__ import annotations

import json
from pathlib import Path

from chatroom.cli.config import config_dir, write_private

RUNNER_DIR = "runner"
SESSIONS_FILE = "sessions.json"


def runner_dir() -> Path:
    return config_dir() / RUNNER_DIR


class SessionStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or runner_dir() / SESSIONS_FILE

    @staticmethod
    def key(server: str, room_id: str, role: str, harness: str) -> str:
        return f"{server} {room_id} {role} {harness}"

    def get(self, key: str) -> str | None:
        value = self._read().get(key)
        return value if isinstance(value, str) else None

    def put(self, key: str, session_id: str | None) -> None:
        data = self._read()
        if session_id is None:
            data.pop(key, None)
        else:
            data[key] = session_id
        write_private(self.path, data)

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
