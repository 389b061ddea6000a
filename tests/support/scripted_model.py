"""A scripted model endpoint on loopback: the one stand-in the runner tests use.

The real agent CLIs talk to it: Claude Code speaks the Anthropic Messages API to
``ScriptedModel`` (``ANTHROPIC_BASE_URL``); Codex speaks the OpenAI Responses API to
``ScriptedResponses`` (tests/support/scripted_openai.py). Both play the same agent, the
``ScriptedAgent`` here: an agent that does what its prompt says. It finds the commands the runner
printed (the classification line, when there is one, and the ``task-complete`` heredoc for the
target the test routes the role to), answers with shell tool calls that run them one by one, and
ends the turn with a short text once the last result comes back. It keeps no state per
conversation: what to do next is read from the request (which commands were run since the last
prompt), so a resumed session is answered exactly like a fresh one. A protocol subclass only
finds the prompt and the commands already issued in its request format, and writes the answer in
its wire format.

Every request body is kept in ``requests`` so a test can see what the CLI sent (a resumed
session carries the earlier turns).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

TERMINATOR = "CHATROOM_MESSAGE_END"
HANDOFF = re.compile(
    r"^(?P<cmd>\S.*\btask-complete\b.*--role=\"(?P<role>[a-z][a-z0-9-]*)\".*"
    r"--next-role=\"(?P<target>[a-z][a-z0-9-]*)\".*<< '" + TERMINATOR + r"')$",
    re.M,
)
CLASSIFY = re.compile(
    r"^(?P<cmd>\S.*\btask-started\b.*--classification=\"(?P<kind>[a-z_]+)\".*)$", re.M
)
DONE_TEXT = "Handed off; nothing more to do."


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") in ("text", "input_text"):
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def _is_tool_result(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


@dataclass
class Plan:
    """What the model does for one prompt: these shell commands, in order."""

    commands: list[str]


class Handler(BaseHTTPRequestHandler):
    """The HTTP side shared by every protocol: JSON bodies in, JSON or server-sent events out."""

    protocol_version = "HTTP/1.1"
    agent: ScriptedAgent  # set on the subclass `start` makes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.json(200, {"data": [], "has_more": False})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.agent.respond(self, self.path.split("?", 1)[0], body)

    def json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, events: Iterable[dict[str, Any]]) -> None:
        """Server-sent events, each named by its ``type``; the connection closes after them."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


@dataclass
class ScriptedAgent:
    """The agent both protocols play, and the loopback server they share.

    ``route``: role -> the target its handoff goes to (default: the first command shown).
    ``classification``: what the entry point records when asked to classify."""

    route: dict[str, str] = field(default_factory=dict)
    classification: str = "new_feature"
    # The first request whose prompt holds this text gets no answer until `release` is set
    # (`holding` says it arrived): an agent caught mid-task, for the kill tests.
    hold: str | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("BoundHandler", (Handler,), {"agent": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def record(self, body: dict[str, Any]) -> int:
        """Keeps a model request; its number (from 1) names the tool call it gets."""
        with self._lock:
            self.requests.append(body)
            return len(self.requests)

    # --- the agent it plays ---------------------------------------------------------------

    def plan(self, prompt: str) -> Plan:
        commands: list[str] = []
        classify = [m for m in CLASSIFY.finditer(prompt) if m["kind"] == self.classification]
        if classify:
            commands.append(classify[-1]["cmd"])
        handoffs = list(HANDOFF.finditer(prompt))
        if handoffs:
            role = handoffs[0]["role"]
            wanted = self.route.get(role)
            chosen = next((m for m in handoffs if m["target"] == wanted), handoffs[0])
            body = f"Done as {role}: scripted model handing off to {chosen['target']}."
            commands.append(f"{chosen['cmd']}\n{body}\n{TERMINATOR}")
        return Plan(commands)

    def next_command(self, prompt: str, issued: set[str]) -> str | None:
        """The next shell command for `prompt` given the ones already run since it; None when
        the turn is done. A held prompt waits here for `release`."""
        if self.hold and self.hold in prompt and not self.holding.is_set():
            self.holding.set()
            self.release.wait()
        pending = [c for c in self.plan(prompt).commands if c not in issued]
        return pending[0] if pending else None

    def prompts_containing(self, text: str) -> list[dict[str, Any]]:
        """Requests whose conversation mentions `text` anywhere."""
        with self._lock:
            return [r for r in self.requests if text in json.dumps(self.conversation(r))]

    # --- what a protocol provides ---------------------------------------------------------

    def conversation(self, body: dict[str, Any]) -> Any:
        """The part of a request that holds the turns (not the tools or the system prompt)."""
        raise NotImplementedError

    def respond(self, handler: Handler, path: str, body: dict[str, Any]) -> None:
        raise NotImplementedError


@dataclass
class ScriptedModel(ScriptedAgent):
    """The scripted agent behind the Anthropic Messages API (``/v1/messages``), for Claude Code."""

    def conversation(self, body: dict[str, Any]) -> Any:
        return body.get("messages")

    def respond(self, handler: Handler, path: str, body: dict[str, Any]) -> None:
        if path.endswith("/count_tokens"):
            handler.json(200, {"input_tokens": 10})
            return
        if not path.endswith("/v1/messages"):
            handler.json(404, {"type": "error", "error": {"type": "not_found_error"}})
            return
        step = self.record(body)
        blocks, stop = self.answer(body, step)
        if body.get("stream"):
            handler.stream(_events(body, blocks, stop))
        else:
            handler.json(200, _message(body, blocks, stop))

    def answer(self, body: dict[str, Any], step: int) -> tuple[list[dict[str, Any]], str]:
        """The content blocks and stop reason for one request."""
        messages = body.get("messages") or []
        if not body.get("tools"):
            # A side request (a title, a summary): a short text is all it needs.
            return [{"type": "text", "text": "Runner task"}], "end_turn"
        last_prompt = max(
            (
                i
                for i, m in enumerate(messages)
                if m.get("role") == "user" and not _is_tool_result(m) and _text_of(m["content"])
            ),
            default=-1,
        )
        prompt = _text_of(messages[last_prompt]["content"]) if last_prompt >= 0 else ""
        # What was already run since that prompt (Claude Code may merge consecutive tool
        # results into one message, so count the commands, not the results).
        issued = {
            str((block.get("input") or {}).get("command"))
            for m in messages[last_prompt + 1 :]
            if m.get("role") == "assistant" and isinstance(m.get("content"), list)
            for block in m["content"]
            if isinstance(block, dict) and block.get("type") == "tool_use"
        }
        command = self.next_command(prompt, issued)
        if command is not None:
            return [
                {
                    "type": "tool_use",
                    "id": f"toolu_{step:06d}",
                    "name": "Bash",
                    "input": {"command": command, "description": "run the next step"},
                }
            ], "tool_use"
        return [{"type": "text", "text": DONE_TEXT}], "end_turn"


def _message(body: dict[str, Any], blocks: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "scripted"),
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def _events(body: dict[str, Any], blocks: list[dict[str, Any]], stop: str) -> list[dict[str, Any]]:
    start = {**_message(body, [], stop), "stop_reason": None}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            delta = {"type": "text_delta", "text": block["text"]}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 10},
        }
    )
    events.append({"type": "message_stop"})
    return events
