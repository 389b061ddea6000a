"""`--timeout 30m`: durations as the agent would write them."""

from __future__ import annotations

import re

from chatroom.cli.errors import LocalInputError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)?", re.IGNORECASE)
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_duration(text: str) -> float:
    """`90` or `90s`, `30m`, `2h`, `1h30m`, `1.5h`, `500ms` -> seconds (a bare number is
    seconds)."""
    raw = text.strip().lower().replace(" ", "")
    pos = 0
    total = 0.0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None or match.end() == pos:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        raise LocalInputError(
            f"--timeout {text!r} is not a duration: use e.g. 90s, 30m, 2h or 1h30m."
        )
    if total <= 0:
        raise LocalInputError(
            "--timeout must be more than zero (leave it out to wait without end)."
        )
    return total
