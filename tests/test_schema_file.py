"""The committed schema.graphql is the schema the code serves (SPEC §3)."""

from __future__ import annotations

import difflib
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
FIX = "run `.venv/bin/python -m chatroom.schema.build > schema.graphql`"


def test_schema_file_matches_the_code() -> None:
    from chatroom.schema.build import sdl

    committed = SCHEMA_FILE.read_text()
    printed = sdl()
    if committed != printed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                printed.splitlines(keepends=True),
                "schema.graphql",
                "chatroom.schema.build.sdl()",
                n=2,
            )
        )
        raise AssertionError(f"schema.graphql is out of date: {FIX}\n{diff[:5000]}")
