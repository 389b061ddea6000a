"""`chatroom serve`: the GraphQL server, on an embedded PostgreSQL unless DATABASE_URL is set."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote, urlsplit

import typer

APP_FACTORY = "chatroom.schema.app:create_app"
# How uvicorn runs the app: here, and in the tests' and benchmarks' servers, which pass these as
# uvicorn's flags (tests/support/server.py). No permessage-deflate on websockets: a connection
# compresses with its own zlib state, so one event to 1,000 subscribers was compressed 1,000
# times (a twentieth of that fan-out's server CPU), and each subscription kept a compressor's
# memory, for frames of a few hundred bytes (docs/decisions.md, "Live delivery").
UVICORN_SETTINGS: dict[str, Any] = {"ws_per_message_deflate": False}


def uvicorn_flags() -> list[str]:
    """UVICORN_SETTINGS as `python -m uvicorn` flags."""
    return [
        f"--{name.replace('_', '-')}={str(value).lower()}"
        for name, value in UVICORN_SETTINGS.items()
    ]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8787,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the embedded PostgreSQL keeps its data (default: the user data dir). "
            "Ignored when DATABASE_URL is set.",
            file_okay=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Number of uvicorn worker processes.")] = 1,
) -> None:
    """Run the chatroom server (web page at /, GraphiQL at /graphql).

    Uses DATABASE_URL, or an embedded PostgreSQL when it is unset; migrations are applied on start.
    """
    # Imported here, not at module level, so that every other command starts fast.
    import uvicorn

    embedded = None
    with _stop_on_termination():
        try:
            if os.environ.get("DATABASE_URL"):
                database = describe_database_url(os.environ["DATABASE_URL"])
            else:
                # The one sanctioned import of server code from the CLI package (allowed by
                # tests/test_layers.py): `serve` has to start the database the server will use.
                from chatroom.db.embedded import EmbeddedPostgres, default_data_dir

                embedded = EmbeddedPostgres(data_dir or default_data_dir())
                try:
                    os.environ["DATABASE_URL"] = embedded.start()
                except RuntimeError as exc:
                    typer.echo(f"chatroom serve: {exc}", err=True)
                    raise typer.Exit(1) from None
                database = f"embedded PostgreSQL at {embedded.pgdata}"
            typer.echo(
                f"chatroom: web page at {base_url(host, port)}/, GraphiQL at "
                f"{base_url(host, port)}/graphql; database: {database}"
            )
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                **UVICORN_SETTINGS,
            )
        except (KeyboardInterrupt, _Terminated):
            pass  # Ctrl-C or `kill`: an expected end; uvicorn has already shut down gracefully.
        finally:
            if embedded is not None:
                embedded.stop()


class _Terminated(BaseException):
    """Raised from the SIGTERM handler so that `finally` blocks run."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signum)


def _hangup_as_terminate(signum: int, frame: FrameType | None) -> None:
    # Raising here could be swallowed by the event loop (uvloop logs exceptions from signal
    # handlers); SIGTERM reaches uvicorn's own handler and shuts the server down gracefully.
    signal.raise_signal(signal.SIGTERM)


@contextmanager
def _stop_on_termination() -> Iterator[None]:
    """Make SIGTERM (and SIGHUP) end `serve` through its `finally`, like Ctrl-C does.

    uvicorn handles SIGTERM while it serves, then re-raises it once it has shut down; with the
    default handler that would kill the process before the embedded PostgreSQL is stopped.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    handlers = {signal.SIGTERM: _raise_terminated, signal.SIGHUP: _hangup_as_terminate}
    for sig, handler in handlers.items():
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def base_url(host: str, port: int) -> str:
    """The server's URL as a browser on this machine opens it."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def describe_database_url(url: str) -> str:
    """`scheme://user:***@host:port/db` for display: the password is never printed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "DATABASE_URL (unparsable)"
    if not parts.scheme:
        return "DATABASE_URL (unparsable)"
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    socket = ""
    if not host:
        # Unix socket: libpq/asyncpg style `?host=/path/to/dir`.
        socket_dir = unquote(parse_qs(parts.query).get("host", [""])[0])
        socket = f"?host={socket_dir}" if socket_dir else ""
    user = unquote(parts.username) if parts.username else ""
    if parts.password:
        user += ":***"
    if user:
        user += "@"
    database = parts.path.lstrip("/")
    return f"{parts.scheme}://{user}{host}/{database}{socket}"
