"""GraphQL documents kept as files (`<Name>.graphql`, one operation each), checked against the
committed schema.graphql and loaded by name. The CLI (chatroom/cli/operations) and the web page
(chatroom/web/operations) both keep their documents this way (SPEC §13); tests and benchmarks
send them as the products do (``cli_operation`` is the CLI's own loader)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from graphql import OperationDefinitionNode, build_schema, parse, validate

from chatroom.cli.client import operation as cli_operation
from chatroom.schema.trusted_documents import document_text

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "schema.graphql"
WEB_OPERATIONS = REPO_ROOT / "chatroom" / "web" / "operations"

__all__ = ["SCHEMA_FILE", "check_operation_files", "cli_operation", "web_operation"]


@cache
def web_operation(name: str) -> str:
    """The text of the web page's `operations/<name>.graphql` with the fragments it spreads,
    as the page sends it."""
    return document_text(WEB_OPERATIONS / f"{name}.graphql")


def check_operation_files(directory: Path, read: Callable[[str], str] | None = None) -> list[Path]:
    """Assert that every `*.graphql` file in `directory` is valid against schema.graphql and
    holds one operation named like the file (plus the fragments it uses). `read(name)` loads a
    document the way its client does (default: the file's text). Returns the files, sorted."""
    schema = build_schema(SCHEMA_FILE.read_text())
    files = sorted(directory.glob("*.graphql"))
    assert files, f"no .graphql files in {directory}"
    for path in files:
        text = read(path.stem) if read else path.read_text(encoding="utf-8")
        document = parse(text)
        errors = validate(schema, document)
        assert not errors, f"{path.name}: {errors}"
        # One operation per file, named like the file.
        names = [
            d.name.value if d.name else None
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        ]
        assert names == [path.stem], path.name
    return files
