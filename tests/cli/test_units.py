"""The CLI's local pieces, without a server: operation documents, message normalisation,
durations, escaping, the login file, and what start-up imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom.cli import config
from chatroom.cli.client import OPERATIONS_DIR, operation
from chatroom.cli.durations import parse_duration
from chatroom.cli.errors import LocalInputError
from chatroom.cli.message_input import normalize
from chatroom.cli.render import boundary, clean, visible
from tests.cli.support import REPO_ROOT
from tests.support.operations import check_operation_files


def test_every_operation_is_valid_against_the_schema() -> None:
    check_operation_files(OPERATIONS_DIR, read=operation)


def test_shared_selections_are_one_fragment_each() -> None:
    """The documents that read agent slots (or machines) spread one fragment for them; the
    text the CLI sends is the file, then its fragments in name order, as the trusted-document
    registry composes and registers it."""
    from chatroom.schema.trusted_documents import registry, sha256

    slots, machine = "AgentSlotFields", "MachineFields"
    for name, spread in (
        ("ChatroomAgents", [slots]),
        ("MachineAgents", [slots]),
        ("Machines", [slots, machine]),
        ("ClaimAgentSlot", [slots]),
        ("StartAgents", [slots]),
        ("StopAgents", [slots]),
        ("RestartAgents", [slots]),
        ("RegisterMachine", [machine]),
    ):
        own = (OPERATIONS_DIR / f"{name}.graphql").read_text()
        assert all(f"...{fragment}" in own for fragment in spread), name
        parts = [(OPERATIONS_DIR / "fragments" / f"{f}.graphql").read_text() for f in spread]
        text = operation(name)
        assert text == "\n".join([own, *parts]), name
        assert sha256(text) in registry(), name


def test_no_query_text_in_python() -> None:
    for path in (REPO_ROOT / "chatroom" / "cli").rglob("*.py"):
        text = path.read_text()
        for marker in ("mutation ", "query ", "subscription "):
            assert f'"{marker}' not in text and f"'{marker}" not in text, (path, marker)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("\n\n  hello\n  world  \n\n", "  hello\n  world  "),
        ("a\r\nb\r\n", "a\r\nb"),  # line ends kept, byte for byte, but the last one
        ("---MESSAGE---\nbody", "body"),
        ("\n---MESSAGE---\n\nbody\n", "body"),
        ("body\n---MESSAGE---", "body\n---MESSAGE---"),
        ("\ufeffbom", "bom"),
        (
            "EOF\nterminator: CHATROOM_MESSAGE_END inline",
            "EOF\nterminator: CHATROOM_MESSAGE_END inline",
        ),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["", "\n \n", "---MESSAGE---", "a\nCHATROOM_MESSAGE_END\nb"])
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(LocalInputError):
        normalize(raw)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400),
     ("500ms", 0.5), (" 10 M ", 600)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "10x", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(LocalInputError):
        parse_duration(text)


def test_clean_and_visible() -> None:
    raw = "a <b> & c\x1b[1;31m red\x1b[0m\x1b]0;title\x07 \x00\x08\x7f\x9b\ttab\nline\r"
    assert clean(raw) == "a <b> & c red \ttab\nline"
    # A body as printed: every character as written, control characters as visible escapes
    # (CRLF line ends and tabs pass as they are).
    assert visible(raw) == (
        "a <b> & c\\x1b[1;31m red\\x1b[0m\\x1b]0;title\\x07 \\x00\\x08\\x7f\\x9b\ttab\nline\\r"
    )
    assert visible("x\r\ny -> ü &amp; ]]>") == "x\r\ny -> ü &amp; ]]>"


def test_boundary_is_not_a_line_of_the_body() -> None:
    line = boundary("x")
    assert line.startswith("CHATROOM_BODY_")
    assert boundary(f"{line}\n{line}") != line
    assert boundary("x") != line  # fresh per delivery


def test_server_urls() -> None:
    assert config.normalize_server("127.0.0.1:8787") == "http://127.0.0.1:8787"
    assert config.normalize_server("http://h:1/graphql/") == "http://h:1"
    assert config.normalize_server("wss://h/x/graphql") == "https://h/x"
    target = config.Target("https://h/x", None, None, False)
    assert target.http_url == "https://h/x/graphql" and target.ws_url == "wss://h/x/graphql"
    with pytest.raises(LocalInputError):
        config.normalize_server("ftp://h")


def test_login_file_is_private_and_per_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATROOM_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("CHATROOM_TOKEN", raising=False)
    monkeypatch.delenv("CHATROOM_SERVER", raising=False)
    user = {"id": "u1", "displayName": "A"}
    path = config.save_login("http://a:1", "tok-a", user, guest=True)
    config.save_login("http://b:2", "tok-b", user, guest=False)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert config.resolve_target(None) == config.Target("http://b:2", "tok-b", "login_file", False)
    assert config.resolve_target("http://a:1").token == "tok-a"
    assert config.resolve_target("http://c:3").token is None  # never sent to another server
    monkeypatch.setenv("CHATROOM_TOKEN", "env-tok")
    assert config.resolve_target(None).token_source == "env"
    assert config.forget_login("http://b:2") and config.forget_login("http://a:1")
    assert not path.exists()


def test_start_up_imports_nothing_heavy() -> None:
    """`--help` and local errors must not pay for gql, httpx, pydantic or the server."""
    code = (
        "import sys\n"
        "sys.argv = ['chatroom', '--help']\n"
        "from chatroom.cli import main\n"
        "try:\n"
        "    main.run()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'gql', 'httpx', 'graphql', 'websockets', 'pydantic', 'rich', 'asyncio',\n"
        "         'sqlalchemy', 'strawberry', 'starlette', 'chatroom.schema', 'chatroom.db'}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
