"""The one notification channel and its payload format, written and read only here.

Payloads carry ids only, never content: "<room id>:<newest event seq>" (a room's log moved),
"login:<login request id>" (a CLI login changed state), "session:<session id>" (a session row
changed: revoked, renewed, expired or deleted; written by the sessions_changed trigger of
migration 0004, in SQL, so any change by anyone is announced), "machine:<machine id>" (one of
the machine's agent slots, or the machine, changed). PostgreSQL delivers a
notification only if its transaction commits, so nothing is announced that did not happen; a
receiver treats one as a wake-up and re-reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Select, func, select

NOTIFY_CHANNEL = "chatroom_events"


class Topic(StrEnum):
    ROOM = "room"
    LOGIN = "login"
    SESSION = "session"
    MACHINE = "machine"


@dataclass(frozen=True)
class Notice:
    topic: Topic
    id: uuid.UUID
    seq: int | None = None  # a room's newest event seq


def room_payload(room_id: uuid.UUID, seq: int) -> str:
    return f"{room_id}:{seq}"


def login_payload(request_id: uuid.UUID) -> str:
    return f"{Topic.LOGIN}:{request_id}"


def machine_payload(machine_id: uuid.UUID) -> str:
    return f"{Topic.MACHINE}:{machine_id}"


def notify(payload: str) -> Select[tuple[object]]:
    """The statement that announces `payload` when the transaction commits."""
    return select(func.pg_notify(NOTIFY_CHANNEL, payload))


def parse(payload: str) -> Notice:
    """The notice a payload announces; ValueError when it is none of the forms above."""
    head, _, tail = payload.partition(":")
    if head in (Topic.LOGIN, Topic.SESSION, Topic.MACHINE):
        return Notice(Topic(head), uuid.UUID(tail))
    return Notice(Topic.ROOM, uuid.UUID(head), int(tail))
