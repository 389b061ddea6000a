"""Where the CLI finds its server and token, and the login file it keeps.

Server URL: `--server`, else env CHATROOM_SERVER, else the server of the last login, else
http://127.0.0.1:8787. Token: env CHATROOM_TOKEN, else the login file's token for that server.

The login file is `$CHATROOM_CONFIG_DIR/login.json` (default `$XDG_CONFIG_HOME/chatroom`, else
`~/.config/chatroom`); the directory is created 0700 and the file written 0600, atomically. It
holds one entry per server, so logging in to a second server never drops the first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatroom.cli.errors import LocalInputError

DEFAULT_SERVER = "http://127.0.0.1:8787"
ENV_SERVER = "CHATROOM_SERVER"
ENV_TOKEN = "CHATROOM_TOKEN"
ENV_CONFIG_DIR = "CHATROOM_CONFIG_DIR"
LOGIN_FILE = "login.json"
SEEN_DIR = "seen"


def config_dir() -> Path:
    explicit = os.environ.get(ENV_CONFIG_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "chatroom"


def login_path() -> Path:
    return config_dir() / LOGIN_FILE


def normalize_server(url: str) -> str:
    """`http://host:port` (no trailing slash, no /graphql). A bare `host:port` means http."""
    raw = url.strip()
    if not raw:
        raise LocalInputError("The server URL is empty: pass e.g. --server=http://127.0.0.1:8787.")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        scheme = "http" if scheme == "ws" else "https"
    if scheme not in ("http", "https") or not parts.netloc:
        raise LocalInputError(
            f"{url!r} is not a server URL: use e.g. --server=http://127.0.0.1:8787."
        )
    path = parts.path.rstrip("/")
    if path.endswith("/graphql"):
        path = path[: -len("/graphql")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class Target:
    """The server to talk to and the token to send (None: not logged in)."""

    base_url: str
    token: str | None
    token_source: str | None  # "env" | "login_file" | None
    server_from_flag: bool

    @property
    def http_url(self) -> str:
        return self.base_url + "/graphql"

    @property
    def ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/graphql"


def resolve_target(server_flag: str | None) -> Target:
    store = read_login_file()
    if server_flag:
        base = normalize_server(server_flag)
    elif os.environ.get(ENV_SERVER):
        base = normalize_server(os.environ[ENV_SERVER])
    elif isinstance(store.get("current"), str):
        base = normalize_server(store["current"])
    else:
        base = DEFAULT_SERVER
    env_token = os.environ.get(ENV_TOKEN, "").strip()
    if env_token:
        return Target(base, env_token, "env", bool(server_flag))
    entry = store.get("servers", {}).get(base)
    token = entry.get("token") if isinstance(entry, dict) else None
    if isinstance(token, str) and token:
        return Target(base, token, "login_file", bool(server_flag))
    return Target(base, None, None, bool(server_flag))


def read_login_file() -> dict[str, Any]:
    path = login_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise LocalInputError(f"Cannot read {path}: {exc.strerror}. Fix its permissions.") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise LocalInputError(
            f"{path} is not valid JSON. Delete it and run `chatroom auth login` again."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
        raise LocalInputError(
            f"{path} has an unexpected shape. Delete it and run `chatroom auth login` again."
        )
    return data


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path`, atomically, readable by this user only (0600, in a 0700
    directory): the login file and the runner's files (sessions, machine ids) alike."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_login(base_url: str, token: str, user: dict[str, Any], *, guest: bool) -> Path:
    path = login_path()
    data = read_login_file()
    servers = data.setdefault("servers", {})
    servers[base_url] = {
        "token": token,
        "user_id": user.get("id"),
        "display_name": user.get("displayName"),
        "guest": guest,
    }
    data["current"] = base_url
    data["version"] = 1
    write_private(path, data)
    return path


def forget_login(base_url: str) -> bool:
    """Drop the server's entry; delete the file when nothing is left. True if it had one."""
    path = login_path()
    data = read_login_file()
    servers = data.get("servers", {})
    had = servers.pop(base_url, None) is not None
    if not had:
        return False
    if data.get("current") == base_url:
        data["current"] = next(iter(servers), None)
    if servers:
        write_private(path, data)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return True


def seen_marker(base_url: str, room_id: str, role: str) -> Path:
    """Exists once the role's full guidance was printed in this config dir."""
    key = hashlib.sha256(f"{base_url}\n{room_id}\n{role}".encode()).hexdigest()[:24]
    return config_dir() / SEEN_DIR / key


def mark_seen(base_url: str, room_id: str, role: str) -> None:
    path = seen_marker(base_url, room_id, role)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass  # at worst the guidance is printed again
