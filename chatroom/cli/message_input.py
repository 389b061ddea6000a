"""The text of a message: `--message`, `--message-file PATH` (`-` = stdin) or stdin (a heredoc).

Normalised gently (ergonomics §d): strict UTF-8, an optional first line `---MESSAGE---` dropped,
leading and trailing blank lines trimmed (indentation kept). Line ends are kept as written (CRLF
too: a body reaches its reader byte for byte, SPEC §9), except the last line's. Refused: an
empty body, and a body holding the heredoc terminator on a line of its own (the shell read past
a misplaced closing line, so the text is not what the agent meant to send).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import TERMINATOR

MARKER = "---MESSAGE---"
# The body line of the heredoc printed in deliveries (render.PLACEHOLDER), sent unchanged.
PLACEHOLDER = "<your handoff message: what you did, how you checked it, what is left for them>"


@dataclass(frozen=True)
class Body:
    text: str
    source: str  # "flag" | "file" | "stdin"
    path: str | None = None

    @property
    def lines(self) -> int:
        return self.text.count("\n") + 1

    @property
    def chars(self) -> int:
        return len(self.text)


def read_body(
    message: str | None,
    message_file: str | None,
    *,
    example: list[str],
) -> Body:
    """`example`: the lines to print when stdin is a terminal (how to pass the text)."""
    if message is not None and message_file is not None:
        raise LocalInputError("Give the text once: --message or --message-file, not both.")
    if message is not None:
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            raise LocalInputError(
                "--message is not valid UTF-8. Pass the text through stdin or --message-file."
            ) from None
        return Body(normalize(message), "flag")
    if message_file is not None and message_file != "-":
        path = Path(message_file).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise LocalInputError(
                f"--message-file {message_file!r} does not exist. Check the path, or pass the "
                "text on stdin."
            ) from None
        except IsADirectoryError:
            raise LocalInputError(f"--message-file {message_file!r} is a directory.") from None
        except OSError as exc:
            raise LocalInputError(
                f"Cannot read --message-file {message_file!r}: {exc.strerror}."
            ) from None
        return Body(normalize(decode(raw, f"--message-file {message_file!r}")), "file", str(path))
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        raise LocalInputError("No message: stdin is closed.", lines=example)
    if stdin.isatty():
        raise LocalInputError(
            "No message: stdin is a terminal. Pass the text with a heredoc (the closing line is "
            f"exactly {TERMINATOR}, alone at column 0), or use --message-file PATH.",
            lines=example,
        )
    raw = stdin.buffer.read()
    return Body(normalize(decode(raw, "stdin")), "stdin")


def decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LocalInputError(
            f"The message on {where} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}). Nothing was sent; save the text as UTF-8 and run it again."
        ) from None


def normalize(text: str) -> str:
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].strip() == MARKER:
        del lines[first]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise LocalInputError(
            "The message is empty: nothing was sent. Write what you did and what the recipient "
            "needs, then run it again."
        )
    if len(lines) == 1 and lines[0].strip() == PLACEHOLDER:
        raise LocalInputError(
            "The message is still the placeholder line from the printed command: nothing was "
            "sent. Replace it with your handoff message and run it again."
        )
    for number, line in enumerate(lines, start=1):
        if line.strip() == TERMINATOR:
            raise LocalInputError(
                f"The message contains the line {TERMINATOR} (line {number}): the heredoc's "
                "closing line was not where the shell expected it, so it read past it. Nothing "
                f"was sent. Put {TERMINATOR} alone at column 0, right after the message."
            )
    lines[-1] = lines[-1].removesuffix("\r")
    return "\n".join(lines)
