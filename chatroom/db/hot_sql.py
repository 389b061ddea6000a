"""The hot mutations' statements (sendMessage, claimTask, sendHandoff), as fixed SQL texts.

Each text is built here once, at import, from the tables' own column lists, and sent with
chatroom/db/driver.py: prepared once per connection, a call binds values only. Every parameter
carries its column's type (`$n::type`), so PostgreSQL never has to guess one inside a CTE or an
INSERT ... SELECT. What the statements mean (which rows change, in what order) is documented
where they are used, chatroom/resolvers/writers.py; this module only spells them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import asyncpg

from chatroom.db.models import ACTIVE_TASK_STATUSES, Chatroom, Message, Participant, Task

TASKS: Table = Task.__table__  # type: ignore[attr-defined]
MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
PARTICIPANTS: Table = Participant.__table__  # type: ignore[attr-defined]

_DIALECT = postgresql.dialect()


def names(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns)


ROOM_COLUMNS = names(Chatroom.__table__)  # type: ignore[attr-defined]
TASK_COLUMNS = names(TASKS)
MESSAGE_COLUMNS = names(MESSAGES)
PARTICIPANT_COLUMNS = names(PARTICIPANTS)
# What a write of a task this transaction holds sets: everything but its identity.
TASK_STATE = tuple(c for c in TASK_COLUMNS if c not in ("id", "chatroom_id", "created_at"))
# What the promotion of the oldest queued task to pending sets (writers._status_values).
PROMOTED_STATE = ("status", "updated_at", "lease_expires_at", "queue_position")
# What classifying a request writes on its message.
CLASSIFIED_STATE = ("classification", "follows_message_id", "effective_classification")


class Params:
    """Numbers the parameters of one statement, each cast to its column's type."""

    def __init__(self) -> None:
        self.n = 0

    def one(self, table: Table, column: str) -> str:
        self.n += 1
        return f"${self.n}::{table.c[column].type.compile(dialect=_DIALECT)}"

    def row(self, table: Table, columns: Sequence[str]) -> str:
        return ", ".join(self.one(table, c) for c in columns)


class Compiled:
    """A Core or ORM statement compiled once, at import, to a driver text: where a rule is
    already a SQLAlchemy expression (access's visibility), it stays written once, there."""

    def __init__(self, statement: Any) -> None:
        compiled = statement.compile(dialect=asyncpg.dialect())
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())

    def args(self, **values: Any) -> list[Any]:
        return [values[name] for name in self.names]


def _list(columns: Sequence[str], alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in columns)


def _insert(p: Params, table: Table, columns: Sequence[str], *, after: str | None = None) -> str:
    values = p.row(table, columns)
    source = f"SELECT {values} FROM {after}" if after else f"VALUES ({values})"
    return f"INSERT INTO {table.name} ({', '.join(columns)}) {source}"


def _task_write(p: Params, returning: str = "") -> str:
    task_id = p.one(TASKS, "id")
    sets = ", ".join(f"{c} = {p.one(TASKS, c)}" for c in TASK_STATE)
    return f"UPDATE tasks SET {sets} WHERE id = {task_id}{returning}"


def _participant_set(p: Params, *, seen: bool) -> str:
    """`before` locks the role's row and remembers its status; `p` writes it (RETURNING the
    row, then the status before). Its parameters: room, role, status, now[, seen_at]."""
    room, role = p.one(PARTICIPANTS, "chatroom_id"), p.one(PARTICIPANTS, "role")
    status, now = p.one(PARTICIPANTS, "status"), p.one(PARTICIPANTS, "updated_at")
    seen_at = p.one(PARTICIPANTS, "last_seen_at") if seen else "part.last_seen_at"
    return (
        "before AS (SELECT id, status AS was FROM participants "
        f"WHERE chatroom_id = {room} AND role = {role} FOR UPDATE), "
        f"p AS (UPDATE participants AS part SET status = {status}, updated_at = {now}, "
        f"last_seen_at = {seen_at} FROM before WHERE part.id = before.id "
        f"RETURNING {_list(PARTICIPANT_COLUMNS, 'part')}, before.was)"
    )


def _oldest_queued(p: Params) -> str:
    return (
        "(SELECT id FROM tasks "
        f"WHERE chatroom_id = {p.one(TASKS, 'chatroom_id')} AND status = 'queued' "
        "ORDER BY queue_position LIMIT 1)"
    )


def _set_participant(*, seen: bool) -> str:
    return f"WITH {_participant_set(Params(), seen=seen)} SELECT * FROM p"


def _post_request() -> str:
    """A user request: the message, then the task made from it (they point at each other, so
    both are one statement; the foreign keys are checked at its end)."""
    p = Params()
    message = _insert(p, MESSAGES, MESSAGE_COLUMNS)
    return f"WITH m AS ({message}) {_insert(p, TASKS, TASK_COLUMNS)}"


def _classify() -> str:
    """classifyTask: the chain's origin message classified, the holder's task written (its
    lease renewed)."""
    p = Params()
    origin = p.one(MESSAGES, "id")
    sets = ", ".join(f"{c} = {p.one(MESSAGES, c)}" for c in CLASSIFIED_STATE)
    return f"WITH m AS (UPDATE messages SET {sets} WHERE id = {origin}) {_task_write(p)}"


def _start_task() -> str:
    """The claim: the task written as held, its source message claimed (none when the source
    parameter is NULL), the role's participant active and seen. One row: p, then m."""
    p = Params()
    task = _task_write(p)
    claimed_by, source = p.one(MESSAGES, "claimed_by_role"), p.one(MESSAGES, "id")
    message = (
        f"UPDATE messages SET claimed_by_role = {claimed_by} WHERE id = {source} "
        f"RETURNING {', '.join(MESSAGE_COLUMNS)}"
    )
    participant = _participant_set(p, seen=True)
    return (
        f"WITH t AS ({task}), m AS ({message}), {participant} "
        "SELECT p.*, m.* FROM p LEFT JOIN m ON true"
    )


def _pass_baton(*, to_user: bool) -> str:
    """The handoff: the sender's task completed FIRST (`done`; the new task or the promotion
    reads from it, since the partial unique index allows one active task per room), the
    handoff message, then either the target's new task or, back to the user, the oldest queued
    task made pending; the sender's participant waiting. One row: p, then the promoted task."""
    p = Params()
    done = _task_write(p, returning=" RETURNING id")
    message = _insert(p, MESSAGES, MESSAGE_COLUMNS)
    if to_user:
        sets = ", ".join(f"{c} = {p.one(TASKS, c)}" for c in PROMOTED_STATE)
        oldest = _oldest_queued(p)
        next_work = (
            f"q AS (UPDATE tasks SET {sets} WHERE id = {oldest} AND EXISTS (SELECT FROM done) "
            f"RETURNING {', '.join(TASK_COLUMNS)})"
        )
        tail = "SELECT p.*, q.* FROM p LEFT JOIN q ON true"
    else:
        next_work = f"t AS ({_insert(p, TASKS, TASK_COLUMNS, after='done')})"
        tail = "SELECT p.* FROM p"
    participant = _participant_set(p, seen=False)
    return f"WITH done AS ({done}), m AS ({message}), {next_work}, {participant} {tail}"


def _active_task(*, lock: bool) -> str:
    statuses = ", ".join(f"'{s.value}'" for s in ACTIVE_TASK_STATUSES)
    return (
        f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks "
        f"WHERE chatroom_id = $1::UUID AND status IN ({statuses})" + (" FOR UPDATE" if lock else "")
    )


# A room's one pending or in-progress task (the partial unique index allows no second).
ACTIVE_TASK = {lock: _active_task(lock=lock) for lock in (True, False)}
# A task of the room, locked: $1 the task, $2 the room.
LOCK_TASK = (
    f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks "
    "WHERE id = $1::UUID AND chatroom_id = $2::UUID FOR UPDATE"
)
SET_PARTICIPANT = {seen: _set_participant(seen=seen) for seen in (True, False)}
INSERT_MESSAGE = _insert(Params(), MESSAGES, MESSAGE_COLUMNS)
INSERT_TASK = _insert(Params(), TASKS, TASK_COLUMNS)
CLASSIFY = _classify()
POST_REQUEST = _post_request()
START_TASK = _start_task()
PASS_TO_AGENT = _pass_baton(to_user=False)
PASS_TO_USER = _pass_baton(to_user=True)
WRITE_TASK = _task_write(Params())


def values(row: Any, columns: Sequence[str]) -> list[Any]:
    """A row object's values for `columns`, in order (the parameters of an INSERT above)."""
    return [getattr(row, c) for c in columns]
