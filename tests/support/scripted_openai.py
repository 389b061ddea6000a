"""The scripted agent behind the OpenAI Responses API (``POST /v1/responses``), for Codex.

Codex 0.171 (``codex exec``) speaks only the Responses API to a configured provider, always
streaming. Its shell tool is the ``exec_command`` function (``{"cmd": ...}``); a tool result comes
back as a ``function_call_output`` input item after the ``function_call`` it answers, and the
prompt is the last ``user`` message that is not one of Codex's own context blocks (those open
with a ``<tag>``: ``<environment_context>``, AGENTS.md instructions...). What to run is decided
by ``ScriptedAgent`` (tests/support/scripted_model.py), as for Claude Code.

``codex_env`` points a Codex run at it: a scratch ``CODEX_HOME`` whose config.toml names this
endpoint as the model provider (``wire_api = "responses"``, the key in ``env_key``'s variable,
sent as ``Authorization: Bearer``), so nothing is read from or written to the real home and no
login is needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.node_tools import NODE_BIN, node_tool
from tests.support.scripted_model import DONE_TEXT, Handler, ScriptedAgent, _text_of

SHELL_TOOL = "exec_command"
KEY_ENV = "CHATROOM_SCRIPTED_OPENAI_KEY"
MODEL = "scripted"


def _user_prompt(item: dict[str, Any]) -> str | None:
    if item.get("type", "message") != "message" or item.get("role") != "user":
        return None
    text = _text_of(item.get("content"))
    return text if text.strip() and not text.lstrip().startswith("<") else None


@dataclass
class ScriptedResponses(ScriptedAgent):
    def conversation(self, body: dict[str, Any]) -> Any:
        return body.get("input")

    def respond(self, handler: Handler, path: str, body: dict[str, Any]) -> None:
        if not path.endswith("/responses"):
            handler.json(404, {"error": {"type": "not_found", "message": path}})
            return
        step = self.record(body)
        item = self.answer(body, step)
        response = {"id": f"resp_{step:06d}", "object": "response", "model": body.get("model")}
        usage = {
            "input_tokens": 10,
            "input_tokens_details": None,
            "output_tokens": 10,
            "output_tokens_details": None,
            "total_tokens": 20,
        }
        handler.stream(
            [
                {"type": "response.created", "response": {**response, "status": "in_progress"}},
                {"type": "response.output_item.added", "output_index": 0, "item": item},
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                {
                    "type": "response.completed",
                    "response": {
                        **response,
                        "status": "completed",
                        "output": [item],
                        "usage": usage,
                    },
                },
            ]
        )

    def answer(self, body: dict[str, Any], step: int) -> dict[str, Any]:
        """The one output item for a request: the next shell call, or the closing message."""
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        prompts = [(i, p) for i, item in enumerate(items) if (p := _user_prompt(item))]
        last, prompt = prompts[-1] if prompts else (-1, "")
        command = None
        if any(t.get("name") == SHELL_TOOL for t in body.get("tools") or []):
            issued = {
                str(json.loads(item.get("arguments") or "{}").get("cmd"))
                for item in items[last + 1 :]
                if item.get("type") == "function_call" and item.get("name") == SHELL_TOOL
            }
            command = self.next_command(prompt, issued)
        if command is None:
            # No tools (a side request such as a summary) or nothing left: end the turn.
            return {
                "type": "message",
                "id": f"msg_{step:06d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": DONE_TEXT, "annotations": []}],
            }
        return {
            "type": "function_call",
            "id": f"fc_{step:06d}",
            "call_id": f"call_{step:06d}",
            "name": SHELL_TOOL,
            "arguments": json.dumps({"cmd": command}),
            "status": "completed",
        }


def codex_env(model: ScriptedResponses, home: Path) -> dict[str, str]:
    """The environment for a real `codex` run against `model`, with `home` as its CODEX_HOME."""
    node_tool("codex")  # a clear failure when scripts/npm-tools has not run
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"""model = "{MODEL}"
model_provider = "scripted"
check_for_update_on_startup = false

# Offline: without these Codex also connects to github.com, api.github.com, chatgpt.com and
# ab.chatgpt.com in the background (seen through a logging HTTPS_PROXY); with them, only here.
[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
remote_models = false
apps = false

[model_providers.scripted]
name = "scripted"
base_url = "{model.base_url}/v1"
wire_api = "responses"
env_key = "{KEY_ENV}"
request_max_retries = 0
stream_max_retries = 0
""",
        encoding="utf-8",
    )
    return {
        "CODEX_HOME": str(home),
        KEY_ENV: "scripted",
        "PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")]),
    }
