"""The MCP tools of one `chatroom mcp` process.

Every tool talks to the server as the CLI does: the CLI's gql client (`chatroom.cli.client.Api`),
its operation documents, its retries and idempotency keys, its Waiter (subscribe, then claim
atomically) and its explanation of a refused handoff. A refusal becomes a tool error (isError)
holding the one-line text the CLI prints, with the next step said as a tool call.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from pydantic import Field

from chatroom.cli.client import LONG_RETRY_SECONDS, Api
from chatroom.cli.commands.work import _refusal
from chatroom.cli.common import role_name
from chatroom.cli.config import Target
from chatroom.cli.errors import CliError, LocalInputError, ServerRefused, Unreachable
from chatroom.cli.live import Waiter
from chatroom.cli.message_input import Body
from chatroom.cli.render import CLASSIFICATIONS, Chain, RoleInfo, team_of
from chatroom.guidance import USER, Team, route, targets
from chatroom.mcp.desk import Desk, wait_once
from chatroom.mcp.results import calm_result, error_text, next_steps, task_result

# A wait_for_task call without a timeout returns calmly after this long, so that a client's own
# request timeout never cuts a call that is about to claim (the agent just calls again).
DEFAULT_WAIT_SECONDS = 600.0
OPEN = ["PENDING", "IN_PROGRESS", "QUEUED"]
# Before the server's guidance, which is written for the CLI: what stands for each command here.
GUIDANCE_PREFACE = (
    "Through this MCP server, use its tools for the commands below: wait_for_task for "
    "`chatroom wait-for-message`, hand_off for `chatroom task-complete` (the message is its "
    "`message` argument), classify for `chatroom task-started`. Do not also run "
    "`chatroom wait-for-message` in a shell: two waiters for one role take the role from each "
    "other."
)

RoomParam = Annotated[
    str | None,
    Field(description="The chatroom id; omit it to use the --room given to `chatroom mcp`."),
]
RoleParam = Annotated[
    str | None,
    Field(description="The role you act as (e.g. builder); omit it to use --role."),
]


class Tools:
    """The tools of one `chatroom mcp` process: its server, and its default room and role."""

    def __init__(self, target: Target, room: str | None, role: str | None) -> None:
        self.client = Api(target, retry_default=LONG_RETRY_SECONDS)
        self.room = room
        self.role = role_name(role) if role else None
        self.desk: Desk | None = None  # the role's waiter for a Claude Code session

    def room_of(self, room_id: str | None) -> str:
        room = (room_id or "").strip() or self.room
        if not room:
            raise LocalInputError(
                "No room given: pass room_id, or start the server with `chatroom mcp --room R`."
            )
        return room

    def role_of(self, role: str | None) -> str:
        if role and role.strip():
            return role_name(role)
        if not self.role:
            raise LocalInputError(
                "No role given: pass role (e.g. builder), or start the server with "
                "`chatroom mcp --role R`."
            )
        return self.role

    async def role_info(self, room: str, role: str) -> RoleInfo:
        data = await self.client.acall("RolePrompt", {"chatroomId": room, "role": role})
        return RoleInfo.of(data["rolePrompt"])

    async def context(self, room: str, role: str) -> tuple[Team, Chain]:
        """The facts a task's routing depends on, read as the CLI's delivery reads them."""
        facts = await self.client.acall("DeliveryContext", {"chatroomId": room, "role": role})
        return team_of(room, facts["chatroom"]), Chain.of(facts)

    async def steps(self, room: str, role: str, delivery: dict[str, Any]) -> dict[str, Any]:
        team, chain = await self.context(room, role)
        return next_steps(team, role, delivery, chain)

    async def holds(self, room: str, role: str, task_id: str) -> bool:
        """Is `task_id` in progress with `role` (not handed off, not taken back)?"""
        data = await self.client.acall("Tasks", {"chatroomId": room, "statuses": ["IN_PROGRESS"]})
        return any(t["id"] == task_id and t["assignedTo"] == role for t in data["tasks"])

    def desk_for(self, room: str, role: str) -> Desk | None:
        desk = self.desk
        if desk is not None and (desk.room_id, desk.role) == (room, role):
            return desk
        return None

    # --- the tools ----------------------------------------------------------------------

    async def wait_for_task(
        self,
        room_id: RoomParam = None,
        role: RoleParam = None,
        timeout_seconds: Annotated[
            float | None,
            Field(
                description="Return calmly (event=timeout) after this many seconds; default "
                f"{DEFAULT_WAIT_SECONDS:.0f}. Call again to keep waiting.",
                gt=0,
            ),
        ] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Wait for your next task: blocks until one arrives for your role, claims it (only one
        waiter per role gets it), and returns it. event=task: do the work described in `body`,
        then call hand_off as `next` says. event=timeout: nothing arrived; call wait_for_task
        again. event=superseded: a newer waiter for this role took over; stop. A task you hold
        and have not handed off comes back with resumed=true."""
        room, who = self.room_of(room_id), self.role_of(role)
        seconds = timeout_seconds or DEFAULT_WAIT_SECONDS

        async def waiting() -> None:
            # What `wait-for-message` says on stderr, as a progress notification (sent only
            # when the client asked for progress).
            if ctx is not None:
                await ctx.report_progress(0, None, f"waiting as {who} in {room}")

        desk = self.desk_for(room, who)
        info: RoleInfo | None
        if desk is not None:
            desk.start()  # after a takeover, a call of this process takes the role back
            outcome = await desk.next(
                seconds, lambda task_id: self.holds(room, who, task_id), waiting
            )
            info = desk.info
        else:
            await waiting()
            waiter = Waiter(self.client, room, who)
            outcome = await wait_once(waiter, seconds)
            info = waiter.info
        if outcome is not None and outcome.event == "connection_lost":
            raise Unreachable(
                f"Lost the connection to the chatroom server{outcome.detail}; call wait_for_task "
                "again when it is back (a task claimed meanwhile comes back as resumed)."
            )
        if outcome is not None and outcome.event == "refused":
            raise CliError(outcome.detail)
        if outcome is None or outcome.event != "task" or outcome.delivery is None:
            return calm_result(room, who, outcome)
        role_now = info.role if info is not None else who
        return task_result(
            room, outcome, role_now, await self.steps(room, role_now, outcome.delivery)
        )

    async def hand_off(
        self,
        message: Annotated[
            str,
            Field(
                description="Your handoff message (sent byte for byte): what you did, how you "
                "checked it, what the next role must do."
            ),
        ],
        target_role: Annotated[
            str, Field(description="Who gets the work next: one of your allowed_targets.")
        ],
        room_id: RoomParam = None,
        role: RoleParam = None,
    ) -> dict[str, Any]:
        """Finish the task you hold and hand it to `target_role` with `message`. Retried through
        dropped connections with one idempotency key, so it hands off once. A refusal sends
        nothing and says which targets are valid. Then call wait_for_task for your next task."""
        room, who = self.room_of(room_id), self.role_of(role)
        target = role_name(target_role)
        key = f"mcp-handoff-{uuid.uuid4()}"  # one per call: every retry reuses it
        variables = {
            "input": {
                "chatroomId": room,
                "senderRole": who,
                "content": message,
                "targetRole": target,
                "idempotencyKey": key,
            }
        }
        try:
            result = (await self.client.acall("SendHandoff", variables, retry="safe"))[
                "sendHandoff"
            ]
        except ServerRefused as exc:
            raise await self._refused(exc, room, who, target, message) from None
        except Unreachable as exc:
            exc.message += (
                " The handoff may not have reached it: call hand_off again when the server is "
                "back (a handoff that did go through is refused the second time, never sent twice)."
            )
            raise
        done = result["completedTasks"][0]["id"] if result["completedTasks"] else None
        if self.desk is not None:
            self.desk.finished(done)
        return {
            "event": "handed_off",
            "room_id": room,
            "role": who,
            "task_id": done,
            "target": target,
            "handoff_message_id": result["message"]["id"],
            "new_task_id": (result.get("newTask") or {}).get("id"),
            "next": "That task is done; your session is not. Call wait_for_task now.",
        }

    async def _refused(
        self, exc: ServerRefused, room: str, role: str, target: str, message: str
    ) -> CliError:
        """The CLI's explanation of a refused handoff (it asks the server for the valid targets,
        synchronously, so off the event loop), its next step said as a tool call."""
        body = Body(message, "flag")
        refusal = await anyio.to_thread.run_sync(
            lambda: _refusal(self.client, exc, room, role, target, body, None)
        )
        targets = refusal.details.get("valid_targets") or []
        lines: list[str] = []
        if refusal.code == "NOT_TASK_HOLDER":
            lines.append(
                f"You hold no task to hand off as {role!r}: call wait_for_task to get your task "
                "(back) first."
            )
        elif targets:
            suggested = refusal.extensions.get("suggestedTarget")
            if isinstance(suggested, str) and suggested in targets:
                lines.append(
                    f"Call hand_off again with target_role {suggested!r} (the same message). "
                    f"The team's targets for {role!r}: {', '.join(targets)}."
                )
            else:
                lines.append(
                    f"Valid targets for {role!r}: {', '.join(targets)}. Call hand_off again "
                    "with one of them as target_role (the same message)."
                )
        return CliError(refusal.message, lines=lines, code=refusal.code)

    async def classify(
        self,
        classification: Annotated[
            str,
            Field(description="question, new_feature or follow_up (see the tool description)."),
        ],
        room_id: RoomParam = None,
        role: RoleParam = None,
    ) -> dict[str, Any]:
        """Classify the user's request behind your task (the entry point does this once, before
        handing off): question (an answer, no change), new_feature (new work; in a team with a
        reviewer it reaches the user only after review) or follow_up (more on the previous
        request; inherits its classification). It decides where you may hand off."""
        room, who = self.room_of(room_id), self.role_of(role)
        kind = classification.strip().lower().replace("-", "_").replace(" ", "_")
        if kind not in CLASSIFICATIONS:
            raise LocalInputError(
                f"classification {classification!r} is not one of question, new_feature, follow_up."
            )
        result = (
            await self.client.acall(
                "ClassifyTask",
                {"input": {"chatroomId": room, "role": who, "classification": kind.upper()}},
            )
        )["classifyTask"]
        effective = (result.get("effectiveClassification") or kind).lower()
        team, chain = await self.context(room, who)
        # The handoff that applies now that the chain has a kind (as `task-started` prints it).
        way = route(team, who, USER, effective, chain.reviewed)
        allowed = targets(team, who, effective, chain.reviewed)
        others = [t for t in allowed if t != way.target]
        also = f" Also allowed: {', '.join(others)}." if others else ""
        return {
            "room_id": room,
            "role": who,
            "message_id": result["id"],
            "classification": (result.get("classification") or kind).lower(),
            "effective_classification": effective,
            "default_target": way.target,
            "allowed_targets": [way.target, *others],
            "next": f"Do the work, then call hand_off with your report as `message` and "
            f"target_role {way.target!r} ({way.reason}).{also}",
        }

    async def send_message(
        self,
        message: Annotated[str, Field(description="The message, sent byte for byte.")],
        room_id: RoomParam = None,
        to_role: Annotated[
            str | None,
            Field(description="As the user: address this role instead of the entry point."),
        ] = None,
        as_role: Annotated[
            str | None,
            Field(
                description="Who speaks: 'user', or an agent role; default --role if given, "
                "else user."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Post a message to the room. As the user it becomes a task for the entry point (or
        `to_role`), or joins the queue while the team is busy. As an agent role it is an
        informational note to the room and never creates a task: hand work on with hand_off."""
        room = self.room_of(room_id)
        sender = role_name(as_role) if as_role and as_role.strip() else (self.role or "user")
        variables: dict[str, Any] = {
            "chatroomId": room,
            "content": message,
            "senderRole": sender,
            "idempotencyKey": f"mcp-send-{uuid.uuid4()}",  # one per call: retries reuse it
        }
        if to_role:
            variables["targetRole"] = role_name(to_role)
        result = (await self.client.acall("SendMessage", {"input": variables}, retry="safe"))[
            "sendMessage"
        ]
        task = result.get("task") or {}
        return {
            "room_id": room,
            "sender_role": sender,
            "message_id": result["message"]["id"],
            "task_id": task.get("id"),
            "task_status": (task.get("status") or "").lower() or None,
            "queue_position": task.get("queuePosition"),
        }

    async def room_status(self, room_id: RoomParam = None) -> dict[str, Any]:
        """The room: its name, status, team roles and entry point, and its tasks that are not
        finished (id, status, who holds it, queue position)."""
        room = self.room_of(room_id)
        info = (await self.client.acall("Chatroom", {"id": room}))["chatroom"]
        tasks = (await self.client.acall("Tasks", {"chatroomId": room, "statuses": OPEN}))["tasks"]
        return {
            "room_id": room,
            "name": info["name"],
            "status": info["status"].lower(),
            "team": info["teamId"],
            "roles": info["teamRoles"],
            "entry_point": info["entryPoint"],
            "open_tasks": [
                {
                    "task_id": t["id"],
                    "status": t["status"].lower(),
                    "assigned_to": t["assignedTo"],
                    "queue_position": t["queuePosition"],
                }
                for t in tasks
            ],
        }

    async def backlog_list(self, room_id: RoomParam = None) -> dict[str, Any]:
        """The room's backlog: work noted for later (id and full text of each item). Backlog
        items never start by themselves; a person moves them to the queue."""
        room = self.room_of(room_id)
        data = await self.client.acall("Tasks", {"chatroomId": room, "statuses": ["BACKLOG"]})
        return {
            "room_id": room,
            "items": [
                {"task_id": t["id"], "content": t["content"], "created_at": t["createdAt"]}
                for t in data["tasks"]
            ],
        }

    async def backlog_add(
        self,
        content: Annotated[str, Field(description="The work to note for later, byte for byte.")],
        room_id: RoomParam = None,
    ) -> dict[str, Any]:
        """Note work for later in the room's backlog (it does not start a task; a person moves
        it to the queue when it is time)."""
        room = self.room_of(room_id)
        # No idempotency key in AddBacklogTaskInput: retried only when nothing reached the
        # server, as `chatroom backlog add` does.
        task = (
            await self.client.acall(
                "AddBacklogTask",
                {"input": {"chatroomId": room, "content": content}},
                retry="connect",
            )
        )["addBacklogTask"]
        return {"room_id": room, "task_id": task["id"], "status": task["status"].lower()}

    async def guidance(self, room_id: str, role: str) -> str:
        """The role guidance (a resource): the server's, which names the CLI's commands, after
        the tools that stand for them. A failure is a resource error with the CLI's text."""
        try:
            prompt = (await self.role_info(room_id, role_name(role))).prompt
        except CliError as exc:
            raise ResourceError(error_text(exc)) from None
        return f"{GUIDANCE_PREFACE}\n\n{prompt}"


TOOL_NAMES = (
    "wait_for_task",
    "hand_off",
    "classify",
    "send_message",
    "room_status",
    "backlog_list",
    "backlog_add",
)
