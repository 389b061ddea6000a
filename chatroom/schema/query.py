"""Query root: each field unpacks, calls one resolver in a short read, converts."""

from __future__ import annotations

import base64
import binascii

import strawberry

from chatroom.db import models
from chatroom.resolvers import access, auth, logins, messages, prompts, rooms, tasks
from chatroom.resolvers.errors import BadInput
from chatroom.resolvers.teams import TEMPLATES
from chatroom.schema import types as t
from chatroom.schema.agents import AgentsQuery
from chatroom.schema.context import AppInfo
from chatroom.schema.members import MembersQuery
from chatroom.schema.session import in_read

MAX_SEQ = 2**31 - 1  # message seq is a 32-bit integer column


def decode_cursor(cursor: str | None, *, field: str) -> int | None:
    if cursor is None:
        return None
    try:
        kind, _, seq = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "seq" and 0 <= int(seq) <= MAX_SEQ:
            return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise BadInput(
        f"{field} is not a cursor from this API: pass an edge's cursor back as is.", field=field
    )


@strawberry.type
class Query(MembersQuery, AgentsQuery):
    @strawberry.field(description="The signed-in user.")
    async def me(self, info: AppInfo) -> t.User:
        return t.User.of(await in_read(info, lambda tx, c: auth.get_user(tx, c.user_id)))

    @strawberry.field(description="Built-in team templates.")
    def teams(self) -> list[t.Team]:
        return [t.Team.of(team) for team in TEMPLATES.values()]

    @strawberry.field(description="My rooms, newest first.")
    async def chatrooms(
        self, info: AppInfo, status: t.RoomStatus | None = None
    ) -> list[t.Chatroom]:
        rows = await in_read(info, lambda tx, c: rooms.list_chatrooms(tx, c, status=status))
        return [t.Chatroom.of(r) for r in rows]

    @strawberry.field
    async def chatroom(self, info: AppInfo, id: strawberry.ID) -> t.Chatroom:
        return t.Chatroom.of(
            await in_read(info, lambda tx, c: access.load_room(tx, c, id, lock=False))
        )

    @strawberry.field(
        description="The feed, oldest first. first/after pages forward; last/before back."
    )
    async def messages(
        self,
        info: AppInfo,
        chatroom_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> t.MessageConnection:
        after_seq = decode_cursor(after, field="after")
        before_seq = decode_cursor(before, field="before")
        page = await in_read(
            info,
            lambda tx, c: messages.list_messages(
                tx,
                c,
                chatroom_id=chatroom_id,
                first=first,
                after_seq=after_seq,
                last=last,
                before_seq=before_seq,
            ),
        )
        nodes = [t.Message.of(m) for m in page.messages]
        edges = [t.MessageEdge(cursor=t.encode_cursor(m.seq), node=m) for m in nodes]
        return t.MessageConnection(
            edges=edges,
            nodes=nodes,
            page_info=t.PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(
        description="Active first, then the queue in order, the backlog, the newest finished."
    )
    async def tasks(
        self,
        info: AppInfo,
        chatroom_id: strawberry.ID,
        statuses: list[t.TaskStatus] | None = None,
        limit: int = 100,
    ) -> list[t.Task]:
        rows = await in_read(
            info,
            lambda tx, c: tasks.list_tasks(
                tx,
                c,
                chatroom_id=chatroom_id,
                statuses=[models.TaskStatus(s) for s in statuses or []] or None,
                limit=limit,
            ),
        )
        return [t.Task.of(r) for r in rows]

    @strawberry.field
    async def task_counts(self, info: AppInfo, chatroom_id: strawberry.ID) -> t.TaskCounts:
        counts = await in_read(
            info, lambda tx, c: tasks.task_counts(tx, c, chatroom_id=chatroom_id)
        )
        return t.TaskCounts(
            pending=counts["pending"],
            in_progress=counts["in_progress"],
            queued=counts["queued"],
            backlog=counts["backlog"],
            completed=counts["completed"],
            cancelled=counts["cancelled"],
        )

    @strawberry.field(
        description="Pending tasks the role may claim now (at most one: the baton rule)."
    )
    async def pending_tasks(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> list[t.Task]:
        rows = await in_read(
            info, lambda tx, c: tasks.pending_tasks(tx, c, chatroom_id=chatroom_id, role=role)
        )
        return [t.Task.of(r) for r in rows]

    @strawberry.field(description="The role's current chain: its origin request and what followed.")
    async def context_window(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> t.ContextWindow:
        window = await in_read(
            info, lambda tx, c: messages.context_window(tx, c, chatroom_id=chatroom_id, role=role)
        )
        return t.ContextWindow(
            origin_message=t.Message.of(window.origin) if window.origin else None,
            messages=[t.Message.of(m) for m in window.messages],
            task=t.Task.of(window.task) if window.task else None,
            classification=models.Classification(window.classification)
            if window.classification
            else None,
            truncated=window.truncated,
        )

    @strawberry.field(description="Full guidance for a role: duties, targets, rules, commands.")
    async def role_prompt(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> t.RolePrompt:
        p = await in_read(
            info, lambda tx, c: prompts.role_prompt(tx, c, chatroom_id=chatroom_id, role=role)
        )
        return t.RolePrompt(
            role=p.role,
            prompt=p.prompt,
            allowed_targets=p.allowed_targets,
            default_target=p.default_target,
        )

    @strawberry.field(description="My sessions (tokens are never shown again).")
    async def sessions(self, info: AppInfo) -> list[t.Session]:
        rows, current = await in_read(info, logins.list_sessions)
        return [t.Session.of(r, current_id=current) for r in rows]

    @strawberry.field(description="A CLI login request, by the code the CLI printed.")
    async def cli_login_request(self, info: AppInfo, user_code: str) -> t.CliLoginApproval:
        row = await in_read(
            info, lambda tx, c: logins.cli_login_request(tx, c, user_code=user_code)
        )
        return t.CliLoginApproval.of(row)
