"""`chatroom mcp` through the SDK's stdio client against a real server: the tools, the whole pair
flow through tools only (builder and reviewer as two MCP server processes), bodies byte for byte,
the guidance resource, and refusals as tool errors with the CLI's text."""

from __future__ import annotations

import asyncio

from chatroom.mcp.tools import GUIDANCE_PREFACE, TOOL_NAMES
from tests.cli.support import Cli, messages, until_waiting
from tests.mcp.support import call, call_error, mcp_session
from tests.support.gql_client import gql_http
from tests.support.server import LiveServer

# Shell and markup hazards, quotes, CRLF, tabs, non-ASCII: all must arrive unchanged.
TRICKY = (
    "Run `make test` && echo \"done\" -> ok; echo $(whoami) 'single'\r\n"
    "<details>it's\tfine</details> &amp; <b>\n"
    "naïve café — 日本語 ✓ $HOME \\n literal\n"
    "CHATROOM_MESSAGE_END is only a word here\n"
)
REVIEW = "Reviewed: looks right.\r\n\tOne nit: `x -> y` && <b>'quoted'</b> ✓"


GUIDANCE = "query($c: ID!, $r: String!) { rolePrompt(chatroomId: $c, role: $r) { prompt } }"


async def test_tools_have_schemas_and_descriptions(cli: Cli) -> None:
    async with mcp_session(cli) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(TOOL_NAMES) <= set(tools)
        for name in TOOL_NAMES:
            tool = tools[name]
            assert tool.description and len(tool.description) > 80, name
            schema = tool.input_schema
            assert schema["type"] == "object", name
            for prop, spec in schema["properties"].items():
                assert spec.get("description"), (name, prop)
        assert {"message", "target_role"} <= set(tools["hand_off"].input_schema["required"])
        assert set(tools["classify"].input_schema["required"]) == {"classification"}
        assert set(tools["backlog_add"].input_schema["required"]) == {"content"}
        waits = tools["wait_for_task"].input_schema["properties"]
        assert set(waits) == {"room_id", "role", "timeout_seconds"}  # no ctx leaks in
        assert "hand_off" in (tools["wait_for_task"].description or "")
        assert "wait_for_task" in (tools["hand_off"].description or "")
        templates = (await session.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == [
            "chatroom://rooms/{room_id}/roles/{role}/guidance"
        ]


async def test_pair_flow_through_tools_only(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    token = cli.token()
    async with (
        mcp_session(cli, "--room", room, "--role", "builder") as builder,
        mcp_session(cli, "--room", room, "--role", "reviewer") as reviewer,
        mcp_session(cli, "--room", room) as user,
    ):
        # The role guidance is a resource: the server's rolePrompt, byte for byte, after the
        # note on which tool stands for which command.
        async with gql_http(live_server, token) as api:
            expected = (await api.execute(GUIDANCE, c=room, r="builder"))["rolePrompt"]["prompt"]
        own = await builder.read_resource("chatroom://guidance")
        assert getattr(own.contents[0], "text", None) == f"{GUIDANCE_PREFACE}\n\n{expected}"
        other = await user.read_resource(f"chatroom://rooms/{room}/roles/builder/guidance")
        assert getattr(other.contents[0], "text", None) == f"{GUIDANCE_PREFACE}\n\n{expected}"

        waiting = asyncio.ensure_future(call(builder, "wait_for_task", timeout_seconds=60))
        await until_waiting(live_server, token, room, "builder")
        sent = await call(user, "send_message", message=TRICKY)
        assert sent["sender_role"] == "user" and sent["task_status"] == "pending"

        task = await waiting
        assert task["event"] == "task"
        assert task["body"] == TRICKY
        assert task["task_id"] == sent["task_id"]
        assert task["from_role"] == "user" and task["resumed"] is False
        assert "classify" in task["next"]  # a user's request is classified first
        assert "reviewer" in task["allowed_targets"]
        # No single default while unclassified: each kind names the handoff the server accepts.
        assert task["default_target"] is None
        assert task["handoff_by_classification"] == {"question": "user", "new_feature": "reviewer"}

        classified = await call(builder, "classify", classification="new_feature")
        assert classified["effective_classification"] == "new_feature"
        assert classified["default_target"] == "reviewer"
        assert classified["allowed_targets"] == ["reviewer"]  # not the user before review

        # The review rule: a new_feature goes to the reviewer before the user.
        refused = await call_error(
            builder, "hand_off", message="straight to you", target_role="user"
        )
        assert refused.startswith("HANDOFF_NOT_ALLOWED: ")
        assert "Nothing was sent." in refused
        assert "Call hand_off again with target_role 'reviewer'" in refused

        handed = await call(builder, "hand_off", message=TRICKY, target_role="reviewer")
        assert handed["target"] == "reviewer" and handed["task_id"] == sent["task_id"]

        review = await call(reviewer, "wait_for_task", timeout_seconds=60)
        assert review["event"] == "task"
        assert review["task_id"] == handed["new_task_id"]
        assert review["body"] == TRICKY
        assert review["from_role"] == "builder"
        assert review["default_target"] == "builder"  # the result goes back to its sender
        assert "user" in review["allowed_targets"]
        done = await call(reviewer, "hand_off", message=REVIEW, target_role="user")
        assert done["target"] == "user" and done["new_task_id"] is None

        status = await call(user, "room_status")
        assert status["open_tasks"] == []
        assert status["roles"] == ["builder", "reviewer"] and status["entry_point"] == "builder"

    feed = await messages(live_server, token, room)
    handoffs = [
        (m["senderRole"], m["targetRole"], m["content"]) for m in feed if m["type"] == "HANDOFF"
    ]
    assert handoffs == [("builder", "reviewer", TRICKY), ("reviewer", "user", REVIEW)]
    assert [m["content"] for m in feed if m["type"] == "MESSAGE"] == [TRICKY]


async def test_an_agent_message_is_informational(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    async with mcp_session(cli, "--room", room, "--role", "reviewer") as reviewer:
        note = await call(reviewer, "send_message", message=REVIEW)
        assert note["sender_role"] == "reviewer" and note["task_id"] is None
    feed = await messages(live_server, cli.token(), room)
    assert [(m["senderRole"], m["content"]) for m in feed] == [("reviewer", REVIEW)]


async def test_timeout_returns_calmly(cli: Cli) -> None:
    room = await cli.create_room()
    async with mcp_session(cli, "--room", room, "--role", "reviewer") as session:
        result = await call(session, "wait_for_task", timeout_seconds=0.5)
        assert result["event"] == "timeout"
        assert "wait_for_task again" in result["next"]


async def test_errors_are_tool_errors_with_the_cli_text(cli: Cli) -> None:
    room = await cli.create_room()
    async with mcp_session(cli, "--room", room, "--role", "builder") as session:
        # Holding no task: the CLI's NOT_TASK_HOLDER line, then the way out as a tool call.
        text = await call_error(session, "hand_off", message="hi", target_role="reviewer")
        printed = await cli.run(
            "task-complete", room, "--role", "builder", "--next-role", "reviewer",
            "--message", "hi",
        )  # fmt: skip
        assert printed.rc != 0
        assert text.splitlines()[0] == printed.err_lines[0].removeprefix("chatroom: ")
        assert text.startswith("NOT_TASK_HOLDER: ") and "Nothing was sent." in text
        assert "call wait_for_task" in text.splitlines()[1]

        text = await call_error(session, "classify", classification="chitchat")
        assert text == "classification 'chitchat' is not one of question, new_feature, follow_up."
        text = await call_error(session, "backlog_list", room_id="no-such-room")
        printed = await cli.run("backlog", "list", "no-such-room")
        assert text == printed.err_lines[0].removeprefix("chatroom: ")
        assert text.split(":")[0] in ("NOT_FOUND", "BAD_USER_INPUT")
        # A wrong argument type is the SDK's validation error, still a tool error.
        await call_error(session, "wait_for_task", timeout_seconds="soon")
    async with mcp_session(cli) as session:
        text = await call_error(session, "backlog_list")
        assert "chatroom mcp --room" in text
        text = await call_error(session, "wait_for_task", room_id=room)
        assert "chatroom mcp --role" in text
    outsider = Cli(cli.server_url, cli.config_dir.parent / "nobody")
    async with mcp_session(outsider, "--room", room) as session:
        text = await call_error(session, "room_status")
        printed = await outsider.run("list")
        assert text == printed.err_lines[0].removeprefix("chatroom: ")  # the CLI's own words
        assert "chatroom auth login" in text


async def test_backlog_add_and_list(cli: Cli) -> None:
    room = await cli.create_room()
    async with mcp_session(cli, "--room", room) as session:
        added = await call(session, "backlog_add", content=TRICKY)
        assert added["status"] == "backlog"
        listed = await call(session, "backlog_list")
        assert [(i["task_id"], i["content"]) for i in listed["items"]] == [
            (added["task_id"], TRICKY)
        ]
        status = await call(session, "room_status")
        assert status["open_tasks"] == []  # a backlog item is not open work
