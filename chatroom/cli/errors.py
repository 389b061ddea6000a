"""Exit codes and the errors the CLI reports (one line on stderr, with the fix).

| code | meaning |
|---|---|
| 0 | success, and every expected end (timeout, signal, superseded, interrupt, lost connection) |
| 1 | the server refused (a domain error: NOT_FOUND, HANDOFF_NOT_ALLOWED, ...), or a CLI bug |
| 2 | bad local input or usage (stdin is a terminal, empty message, unknown flag) |
| 3 | not logged in, or the server refused the token (UNAUTHENTICATED) |
| 4 | the server could not be reached, even after retrying |
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4


class CliError(Exception):
    """An error with its exit code; `lines` (optional) follow the one-line message."""

    exit_code = EXIT_REFUSED
    code = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        lines: list[str] | None = None,
        details: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())
        self.lines = lines or []
        self.details = details or {}
        if code is not None:
            self.code = code


class LocalInputError(CliError):
    exit_code = EXIT_USAGE
    code = "BAD_LOCAL_INPUT"


class NotLoggedIn(CliError):
    exit_code = EXIT_AUTH
    code = "UNAUTHENTICATED"


class Unreachable(CliError):
    exit_code = EXIT_UNREACHABLE
    code = "UNREACHABLE"


class ServerRefused(CliError):
    """A GraphQL error with `extensions.code` (the closed list of SPEC §6)."""

    exit_code = EXIT_REFUSED

    def __init__(
        self,
        code: str,
        message: str,
        extensions: dict[str, Any] | None = None,
        *,
        lines: list[str] | None = None,
    ) -> None:
        super().__init__(message, lines=lines)
        self.code = code
        self.extensions = extensions or {}
        if code == "UNAUTHENTICATED":
            self.exit_code = EXIT_AUTH
