"""Mutation root: each field unpacks, calls one resolver in ONE transaction, converts."""

from __future__ import annotations

import strawberry

from chatroom.db import models
from chatroom.resolvers import auth, handoffs, logins, messages, rooms, tasks
from chatroom.schema import inputs as i
from chatroom.schema import types as t
from chatroom.schema.accounts import AccountMutation
from chatroom.schema.agents import AgentsMutation
from chatroom.schema.context import AppInfo
from chatroom.schema.members import MembersMutation
from chatroom.schema.session import in_transaction


def _handoff_result(o: handoffs.HandoffOutcome) -> t.SendHandoffResult:
    return t.SendHandoffResult(
        message=t.Message.of(o.message),
        completed_tasks=[t.Task.of(x) for x in o.completed_tasks],
        new_task=t.Task.of(o.new_task) if o.new_task else None,
        promoted_task=t.Task.of(o.promoted_task) if o.promoted_task else None,
        sender=t.Participant.of(o.sender),
    )


@strawberry.type
class Mutation(AccountMutation, MembersMutation, AgentsMutation):
    @strawberry.mutation(description="A new guest account and its bearer token (no password).")
    async def create_guest_session(
        self, info: AppInfo, display_name: str | None = None
    ) -> t.GuestSession:
        info.context.check_rate()
        async with info.context.db.transaction() as tx:
            token, user = await auth.create_guest_session(tx, display_name=display_name)
        return t.GuestSession(token=token, user=t.User.of(user))

    @strawberry.mutation
    async def create_chatroom(self, info: AppInfo, input: i.CreateChatroomInput) -> t.Chatroom:
        room = await in_transaction(
            info,
            lambda tx, c: rooms.create_chatroom(
                tx,
                c,
                team_id=input.team_id,
                name=input.name,
                roles=input.roles,
                entry_point=input.entry_point,
                idempotency_key=input.idempotency_key,
            ),
        )
        return t.Chatroom.of(room)

    @strawberry.mutation
    async def rename_chatroom(
        self, info: AppInfo, chatroom_id: strawberry.ID, name: str
    ) -> t.Chatroom:
        room = await in_transaction(
            info, lambda tx, c: rooms.rename_chatroom(tx, c, chatroom_id=chatroom_id, name=name)
        )
        return t.Chatroom.of(room)

    @strawberry.mutation(
        description="Complete the room: active and queued tasks are cancelled, the backlog kept."
    )
    async def complete_chatroom(self, info: AppInfo, chatroom_id: strawberry.ID) -> t.Chatroom:
        room = await in_transaction(
            info, lambda tx, c: rooms.complete_chatroom(tx, c, chatroom_id=chatroom_id)
        )
        return t.Chatroom.of(room)

    @strawberry.mutation(description="Stop everyone; the active task goes back to pending.")
    async def interrupt_chatroom(self, info: AppInfo, chatroom_id: strawberry.ID) -> t.Chatroom:
        room = await in_transaction(
            info, lambda tx, c: rooms.interrupt_chatroom(tx, c, chatroom_id=chatroom_id)
        )
        return t.Chatroom.of(room)

    @strawberry.mutation(description="Mark a role as present and ready for work.")
    async def join_chatroom(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> t.Participant:
        row = await in_transaction(
            info, lambda tx, c: rooms.join_chatroom(tx, c, chatroom_id=chatroom_id, role=role)
        )
        return t.Participant.of(row)

    @strawberry.mutation(
        description="A user request (becomes a task) or an agent's note (no task)."
    )
    async def send_message(self, info: AppInfo, input: i.SendMessageInput) -> t.SendMessageResult:
        o = await in_transaction(
            info,
            lambda tx, c: messages.send_message(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                content=input.content,
                sender_role=input.sender_role,
                target_role=input.target_role,
                idempotency_key=input.idempotency_key,
            ),
        )
        return t.SendMessageResult(
            message=t.Message.of(o.message), task=t.Task.of(o.task) if o.task else None
        )

    @strawberry.mutation(description="Complete your task and pass the baton, in one transaction.")
    async def send_handoff(self, info: AppInfo, input: i.SendHandoffInput) -> t.SendHandoffResult:
        o = await in_transaction(
            info,
            lambda tx, c: handoffs.send_handoff(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                sender_role=input.sender_role,
                content=input.content,
                target_role=input.target_role,
                idempotency_key=input.idempotency_key,
            ),
        )
        return _handoff_result(o)

    @strawberry.mutation(
        description="Take a pending task, in one transaction. Losing a race is success=false."
    )
    async def claim_task(self, info: AppInfo, input: i.ClaimTaskInput) -> t.ClaimTaskResult:
        o = await in_transaction(
            info,
            lambda tx, c: tasks.claim_task(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                task_id=input.task_id,
                role=input.role,
                idempotency_key=input.idempotency_key,
            ),
        )
        return t.ClaimTaskResult(
            success=o.success,
            task=t.Task.of(o.task),
            message=t.Message.of(o.message) if o.message else None,
            participant=t.Participant.of(o.participant) if o.participant else None,
        )

    @strawberry.mutation(description="Classify the user request behind the task the role holds.")
    async def classify_task(self, info: AppInfo, input: i.ClassifyTaskInput) -> t.Message:
        row = await in_transaction(
            info,
            lambda tx, c: handoffs.classify_task(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                role=input.role,
                classification=models.Classification(input.classification),
            ),
        )
        return t.Message.of(row)

    @strawberry.mutation
    async def add_backlog_task(self, info: AppInfo, input: i.AddBacklogTaskInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.add_backlog_task(
                tx, c, chatroom_id=input.chatroom_id, content=input.content
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(description="Edit a queued or backlog task.")
    async def update_task(self, info: AppInfo, input: i.UpdateTaskInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.update_task(
                tx, c, chatroom_id=input.chatroom_id, task_id=input.task_id, content=input.content
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(description="Backlog -> pending (idle room) or the end of the queue.")
    async def move_task_to_queue(self, info: AppInfo, input: i.TaskRefInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.move_task_to_queue(
                tx, c, chatroom_id=input.chatroom_id, task_id=input.task_id
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(
        description="Mark a task done; the active one needs force and frees the baton."
    )
    async def complete_task(self, info: AppInfo, input: i.CompleteTaskInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.complete_task(
                tx, c, chatroom_id=input.chatroom_id, task_id=input.task_id, force=input.force
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(description="Cancel a task; cancelling the active one frees the baton.")
    async def cancel_task(self, info: AppInfo, input: i.TaskRefInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.cancel_task(
                tx, c, chatroom_id=input.chatroom_id, task_id=input.task_id
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(
        description="Take an in-progress task back from a silent agent (back to pending)."
    )
    async def release_task(self, info: AppInfo, input: i.TaskRefInput) -> t.Task:
        row = await in_transaction(
            info,
            lambda tx, c: tasks.release_task(
                tx, c, chatroom_id=input.chatroom_id, task_id=input.task_id
            ),
        )
        return t.Task.of(row)

    @strawberry.mutation(description="Start a device login (no token needed): show the user code.")
    async def request_cli_login(
        self, info: AppInfo, device_name: str | None = None
    ) -> t.CliLoginRequest:
        info.context.check_rate()
        async with info.context.db.transaction() as tx:
            row = await logins.request_cli_login(tx, device_name=device_name)
        return t.CliLoginRequest.of(row)

    @strawberry.mutation(description="Let the CLI that shows this code sign in as me.")
    async def approve_cli_login(self, info: AppInfo, user_code: str) -> t.CliLoginApproval:
        row = await in_transaction(
            info, lambda tx, c: logins.decide_cli_login(tx, c, user_code=user_code, approve=True)
        )
        return t.CliLoginApproval.of(row)

    @strawberry.mutation(description="Refuse the CLI login that shows this code.")
    async def deny_cli_login(self, info: AppInfo, user_code: str) -> t.CliLoginApproval:
        row = await in_transaction(
            info, lambda tx, c: logins.decide_cli_login(tx, c, user_code=user_code, approve=False)
        )
        return t.CliLoginApproval.of(row)

    @strawberry.mutation(
        description="Revoke one of my sessions; without an id, this one (log out)."
    )
    async def revoke_session(
        self, info: AppInfo, session_id: strawberry.ID | None = None
    ) -> t.Session:
        row = await in_transaction(
            info, lambda tx, c: logins.revoke_session(tx, c, session_id=session_id)
        )
        return t.Session.of(row, current_id=None)

    @strawberry.mutation(description="Mint a token that acts only as one role in one room.")
    async def create_agent_token(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> t.AgentToken:
        minted = await in_transaction(
            info,
            lambda tx, c: logins.create_agent_token(tx, c, chatroom_id=chatroom_id, role=role),
        )
        return t.AgentToken(
            token=minted.token, session=t.Session.of(minted.session, current_id=None)
        )
