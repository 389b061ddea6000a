"""GraphQL input objects (SPEC §3)."""

from __future__ import annotations

import strawberry

from chatroom.schema.types import Classification

KEY_HELP = "Retry with the same key to get the first result instead of acting twice."


@strawberry.input
class CreateChatroomInput:
    team_id: str | None = strawberry.field(
        default="pair", description="pair, squad, duo or solo; ignored for custom roles."
    )
    name: str | None = None
    roles: list[str] | None = strawberry.field(default=None, description="A custom team, in order.")
    entry_point: str | None = strawberry.field(
        default=None, description="Defaults to the team's (or the first role)."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.input
class SendMessageInput:
    chatroom_id: strawberry.ID
    content: str
    sender_role: str = "user"
    target_role: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.input
class SendHandoffInput:
    chatroom_id: strawberry.ID
    sender_role: str
    content: str
    target_role: str
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.input
class ClaimTaskInput:
    chatroom_id: strawberry.ID
    task_id: strawberry.ID
    role: str
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.input
class ClassifyTaskInput:
    chatroom_id: strawberry.ID
    role: str
    classification: Classification


@strawberry.input
class AddBacklogTaskInput:
    chatroom_id: strawberry.ID
    content: str


@strawberry.input
class UpdateTaskInput:
    chatroom_id: strawberry.ID
    task_id: strawberry.ID
    content: str


@strawberry.input
class TaskRefInput:
    chatroom_id: strawberry.ID
    task_id: strawberry.ID


@strawberry.input
class CompleteTaskInput:
    chatroom_id: strawberry.ID
    task_id: strawberry.ID
    force: bool = strawberry.field(
        default=False, description="Required to complete the active task."
    )
