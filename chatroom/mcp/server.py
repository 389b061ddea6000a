"""`chatroom mcp`: the tools and the guidance resource on the official SDK's MCPServer, over stdio.

For Claude Code the server declares the experimental `claude/channel` capability in its
`initialize` answer, and serves the handshake era only (Claude Code takes channel notifications
only on such a connection). When the client is Claude Code (its clientInfo name) and the server
was started with `--room` and `--role`, a Desk holds the role's waiter from the session's first
tool call (or resource read) on, and pushes each task that arrives while no wait_for_task call
is open as a `notifications/claude/channel` notification: `content` is the body byte for byte,
`meta` the ids and the next step (Claude Code shows it as `<channel source="chatroom" ...>`).
Both hooks use the SDK's public middleware (every inbound message passes through it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.runner import serve_loop
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from pydantic import BaseModel

from chatroom.cli.config import Target
from chatroom.cli.errors import CliError
from chatroom.cli.live import Outcome
from chatroom.cli.render import RoleInfo
from chatroom.mcp.desk import Desk
from chatroom.mcp.results import calm_result, reported, task_result
from chatroom.mcp.tools import TOOL_NAMES, Tools

LOG = logging.getLogger("chatroom.mcp")
CHANNEL = "claude/channel"
CHANNEL_METHOD = "notifications/claude/channel"
CLAUDE_CODE = "claude-code"  # the clientInfo name Claude Code sends in `initialize`
ChannelMode = Literal["auto", "on", "off"]
# The requests that start the push side: the session is at work (see Channel.middleware).
JOINING = frozenset({"tools/call", "resources/read", "prompts/get"})

INSTRUCTIONS = (
    "Work with a team of agents in a chatroom. Loop: call wait_for_task (it blocks until a task "
    "for your role arrives and claims it), do the work its `body` asks for, call hand_off with "
    "your report and one of its allowed_targets, then call wait_for_task again. A user's request "
    "is classified first with classify. In Claude Code, tasks that arrive while you are not "
    'waiting come as <channel source="chatroom" event="task" task_id=...> messages: the '
    "content is the task's message; it is already claimed for you, so work it and call "
    "hand_off (no wait_for_task needed for it)."
)


class ChannelPush(BaseModel):
    """A `notifications/claude/channel` notification: `content` and string-valued `meta`."""

    method: Literal["notifications/claude/channel"] = "notifications/claude/channel"
    params: dict[str, Any]


def channel_params(
    room: str, role: str, outcome: Outcome, steps: dict[str, Any] | None
) -> dict[str, Any]:
    """What a push carries: for a task, its body as `content` and the rest as `meta` (Claude
    Code takes meta keys that are identifiers, values as strings); `steps` is the task's
    results.next_steps."""
    if outcome.event == "task" and steps is not None:
        result = task_result(room, outcome, role, steps)
        content = result.pop("body") or ""
    else:
        result = calm_result(room, role, outcome)
        content = result.pop("note", None) or result["next"]
    meta = {}
    for key, value in result.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, dict):  # handoff_by_classification
            value = ",".join(f"{k}={v}" for k, v in value.items())
        meta[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return {"content": content, "meta": meta}


class Channel:
    """The push side of one connection: the client's name (from `initialize`), the session to
    notify (from its first tool call) and the Desk that feeds it."""

    def __init__(self, tools: Tools, mode: ChannelMode) -> None:
        self.tools = tools
        self.mode = mode
        self.session: ServerSession | None = None
        self.client_name: str | None = None

    def wanted(self) -> bool:
        if self.mode == "off" or not (self.tools.room and self.tools.role):
            return False
        return self.mode == "on" or self.client_name == CLAUDE_CODE

    async def middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "initialize":
            client = (ctx.params or {}).get("clientInfo") or {}
            self.client_name = client.get("name") if isinstance(client, dict) else None
            result = await call_next(ctx)
            capabilities = result.get("capabilities") if isinstance(result, dict) else None
            if self.mode != "off" and isinstance(capabilities, dict):
                experimental = capabilities.get("experimental") or {}
                capabilities["experimental"] = {**experimental, CHANNEL: {}}
            return result
        if ctx.method in JOINING and self.tools.desk is None and self.wanted():
            # The session's first real use, not its `initialized`: a health check (`claude
            # mcp list`) connects and lists the tools only, and must not take the role over.
            assert self.tools.room and self.tools.role
            self.session = ctx.session  # its standalone channel outlives this request
            desk = Desk(self.tools.client, self.tools.room, self.tools.role, self.push)
            self.tools.desk = desk
            desk.start()
        return await call_next(ctx)

    async def push(self, outcome: Outcome, info: RoleInfo | None) -> None:
        if self.session is None:
            return
        room, role = self.tools.room or "", self.tools.role or ""
        steps = None
        if outcome.event == "task" and outcome.delivery is not None:
            try:
                steps = await self.tools.steps(room, info.role if info else role, outcome.delivery)
            except CliError:  # the server went away after the claim: the task still arrives
                steps = {
                    "next": "Do the work, then call hand_off; a refused hand_off names the "
                    "targets the server accepts."
                }
        params = channel_params(room, role, outcome, steps)
        try:
            await self.session.send_notification(ChannelPush(params=params))  # type: ignore[arg-type]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The client is gone (it is closing us). Nothing is lost: a pushed task is the
            # role's, and the next wait_for_task of any waiter returns it.
            LOG.info("channel push of %s dropped: the client closed the connection", outcome.event)


def build(
    target: Target, room: str | None, role: str | None, channel: ChannelMode = "auto"
) -> tuple[MCPServer[Any], Tools, Channel]:
    tools = Tools(target, room, role)
    push = Channel(tools, channel)
    server: MCPServer[Any] = MCPServer(
        name="chatroom",
        instructions=INSTRUCTIONS,
        middleware=[push.middleware],
        # stderr is the client's log: warnings only (not a line per HTTP request).
        log_level="WARNING",
    )
    for name in TOOL_NAMES:
        server.tool(name=name)(reported(getattr(tools, name)))

    @server.resource(
        "chatroom://rooms/{room_id}/roles/{role}/guidance",
        name="role_guidance",
        description="The full guidance for a role in a room: its duties, where it may hand "
        "off, the classification rule.",
        mime_type="text/markdown",
    )
    async def role_guidance(room_id: str, role: str) -> str:
        return await tools.guidance(room_id, role)

    if room and tools.role:
        own_role = tools.role

        @server.resource(
            "chatroom://guidance",
            name="guidance",
            description=f"The full guidance for {own_role} in room {room}.",
            mime_type="text/markdown",
        )
        async def own_guidance() -> str:
            return await tools.guidance(room, own_role)

    return server, tools, push


def serve(target: Target, room: str | None, role: str | None, channel: ChannelMode) -> None:
    """Serve on stdin/stdout until the client closes them."""
    server, tools, _ = build(target, room, role, channel)

    async def main() -> None:
        try:
            if channel == "off":
                await server.run_stdio_async()  # both protocol eras
            else:
                await serve_handshake_era(server)
        finally:
            if tools.desk is not None:
                await asyncio.shield(tools.desk.close())

    anyio.run(main)


async def serve_handshake_era(server: MCPServer[Any]) -> None:
    """Serve the `initialize` handshake era only. Claude Code takes channel notifications only
    on such a connection: it probes with the 2026-07-28 `server/discover` first, and a server
    that does not know the method is talked to with the handshake instead (every client still
    speaks it). The SDK's own `run` serves whichever era the client opens with."""
    # The SDK has no public accessor for the low-level server that its `run` drives.
    low = server._lowlevel_server
    async with stdio_server() as (read, write), low.lifespan(low) as state:
        await serve_loop(low, read, write, lifespan_state=state)
