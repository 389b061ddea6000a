"""A model of the domain, checked step by step against the real server (SPEC §2.3–§2.7).

Hypothesis drives a ``RuleBasedStateMachine`` through a live server over HTTP: create rooms
(the pair team, and a one-role custom team), user requests (for the entry point or a named
role), agents' notes, claims (of any task, by any role), handoffs (to any target, the sender
itself included), classification, the backlog (add, edit, move to queue, complete with or
without force, cancel), releasing a task, interrupts, joins, completing a room, lease expiry
(the lease is pushed into the past with SQL, then lapses through the server's sweeper, the lazy
expiry inside ``joinChatroom``, a late ``sendHandoff`` of the former holder, refused with
NOT_TASK_HOLDER, or the former holder claiming again), and replays of earlier keyed mutations
(same key and input: the first answer again, nothing changes; same key, other input:
IDEMPOTENCY_KEY_REUSED). Each step is one hypothesis rule that draws a seed; the action and
its arguments come from a Random seeded with it, by weight, mostly the "natural" move (the
pending task by its role, a handoff by the holder) and sometimes anything at all.

The test keeps its own MODEL of every room: each task's status, holder, attempt and content,
the queue's order, who holds the baton, the participants' statuses, every message, the
classification of each chain. Each step predicts the outcome (the data, or the exact error
code) before calling the server. After every step the model is compared with the database and
with the ``tasks`` query (its order: active, then the queue in order, then the backlog), and
the invariants of ``common.check_invariants`` are checked on the example's rooms.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.reliability.common import collect_violations
from tests.support.documents import (
    ADD_BACKLOG,
    CANCEL,
    CLAIM,
    CLASSIFY,
    COMPLETE,
    COMPLETE_ROOM,
    CREATE_GUEST,
    CREATE_ROOM,
    HANDOFF,
    INTERRUPT,
    JOIN,
    MOVE,
    RELEASE,
    SEND,
    TASKS,
    UPDATE,
)
from tests.support.pg import PgDatabase, asyncpg_dsn
from tests.support.server import LiveServer

T = TypeVar("T")
MAX_EXAMPLES = 30
STEPS_PER_EXAMPLE = 50
SWEEP_SECONDS = 0.2
MAX_ROOMS = 3

USER = "user"
TEAMS: dict[str, tuple[list[str], str]] = {
    "pair": (["builder", "reviewer"], "builder"),
    "solo": (["solo"], "solo"),  # a custom team without a reviewer
}
CLASSIFICATIONS = ["NEW_FEATURE", "FOLLOW_UP", "QUESTION"]
INTERRUPT_TEXT = "The user interrupted the room: stop the current work and wait for instructions."

# How often each action is drawn (out of the sum), among those possible at the moment.
WEIGHTS = {
    "claim": 14,
    "handoff": 14,
    "classify": 9,
    "send_request": 10,
    "lease_lapses": 5,
    "move_to_queue": 5,
    "replay_keyed": 4,
    "add_backlog": 4,
    "complete_task": 4,
    "join": 3,
    "edit_task": 3,
    "cancel_task": 3,
    "interrupt": 3,
    "agent_note": 2,
    "release_task": 2,
    "create_room": 1,
    "complete_room": 1,
}
NEEDS_TASKS = {
    "claim",
    "edit_task",
    "move_to_queue",
    "complete_task",
    "cancel_task",
    "release_task",
}


# --- the model ------------------------------------------------------------------------------------


@dataclass(repr=False)
class MTask:
    id: str
    status: str
    content: str
    created_by: str
    assigned_to: str | None
    source: str | None
    origin: str | None
    attempt: int = 0

    def __repr__(self) -> str:
        return f"<task {self.id[:8]} {self.status} {self.assigned_to}>"

    def row(self) -> tuple[Any, ...]:
        return (
            self.status,
            self.assigned_to,
            self.attempt,
            self.content,
            self.created_by,
            self.source,
            self.origin,
        )


@dataclass(repr=False)
class MMessage:
    sender: str
    type: str
    target: str | None
    content: str
    id: str | None = None  # known when the server answered with it
    classification: str | None = None
    effective: str | None = None
    claimed_by: str | None = None

    def __repr__(self) -> str:
        return f"<message {self.type} {self.sender}->{self.target}: {self.content[:20]}>"

    def row(self) -> tuple[Any, ...]:
        return (
            self.sender,
            self.type,
            self.target,
            self.content,
            self.classification,
            self.effective,
            self.claimed_by,
        )


@dataclass(repr=False)
class MRoom:
    id: str
    roles: list[str]
    entry: str
    status: str = "active"
    tasks: dict[str, MTask] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    participants: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # roles with a last_seen_at
    messages: list[MMessage] = field(default_factory=list)
    last_origin: str | None = None

    def __repr__(self) -> str:  # hypothesis prints the rooms it draws
        return f"<room {self.id[:8]} {'+'.join(self.roles)}>"

    def active(self) -> MTask | None:
        found = [t for t in self.tasks.values() if t.status in ("pending", "in_progress")]
        assert len(found) <= 1, "the model broke the baton rule"
        return found[0] if found else None

    def holder(self) -> str | None:
        task = self.active()
        return task.assigned_to if task and task.status == "in_progress" else None

    def message(self, message_id: str | None) -> MMessage | None:
        if message_id is None:
            return None
        return next((m for m in self.messages if m.id == message_id), None)

    def add_message(self, message: MMessage) -> None:
        self.messages.append(message)

    def promote_next(self) -> MTask | None:
        if self.active() is not None or not self.queue:
            return None
        task = self.tasks[self.queue.pop(0)]
        task.status = "pending"
        return task

    def routable(self, task: MTask, role: str) -> bool:
        return task.assigned_to == role or (task.assigned_to is None and role == self.entry)

    def reviewed(self, origin: str) -> bool:
        return any(
            t.origin == origin and t.assigned_to == "reviewer" and t.status == "completed"
            for t in self.tasks.values()
        )


class Expect(Exception):
    """The model's prediction that the call fails with this code (and changes nothing)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- the wire: HTTP to the server, asyncpg to the database, from hypothesis's thread -------------


class Wire:
    def __init__(self, server: LiveServer, db_url: str) -> None:
        self.http_url = server.http_url
        self.db_url = db_url
        self.http = httpx.Client(timeout=30.0, trust_env=False)
        self.runner = asyncio.Runner()
        self.conn: asyncpg.Connection = self.runner.run(asyncpg.connect(asyncpg_dsn(db_url)))
        self.token: str | None = None

    def close(self) -> None:
        self.runner.run(self.conn.close())
        self.runner.close()
        self.http.close()

    def call(self, doc: str, **variables: Any) -> tuple[dict[str, Any] | None, str | None]:
        """(data, None) or (None, error code)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        resp = self.http.post(
            self.http_url, json={"query": doc, "variables": variables}, headers=headers
        )
        assert resp.status_code < 500, resp.text
        body = resp.json()
        if body.get("errors"):
            code = (body["errors"][0].get("extensions") or {}).get("code")
            assert code != "INTERNAL", body["errors"]
            return None, str(code)
        return body["data"], None

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(self.runner.run(self.conn.fetch(query, *args)))


# --- the machine ----------------------------------------------------------------------------------


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


def machine(server: LiveServer, db_url: str, stats: Stats) -> type[RuleBasedStateMachine]:
    class ChatroomMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.wire = Wire(server, db_url)
            self.rooms: list[MRoom] = []
            self.keyed: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            self.counter = 0
            self.steps = 0
            self.completed = False
            self.trace: list[str] = []
            self.rnd = random.Random(0)
            stats.examples += 1

        def teardown(self) -> None:
            self.wire.close()

        # --- helpers ------------------------------------------------------------------------

        def text(self, what: str) -> str:
            self.counter += 1
            return f"{what} #{self.counter}"

        def key(self) -> str:
            return f"sm-{uuid.uuid4()}"

        def step(self, name: str, detail: str = "") -> None:
            self.trace.append(f"{name} {detail}".rstrip())
            self.steps += 1
            stats.steps += 1
            stats.rules[name] += 1

        def run(self, name: str, doc: str, predict: Any, **variables: Any) -> dict[str, Any] | None:
            """Predict (mutating the model, or raising Expect), call, compare the outcome."""
            self.step(name, _brief(variables))
            before = _snapshot(self.rooms)
            try:
                expected = predict()
            except Expect as refusal:
                _restore(self.rooms, before)
                data, code = self.wire.call(doc, **variables)
                self.trace[-1] += f" -> {code}"
                assert code == refusal.code, f"{name}: expected {refusal.code}, got {code} {data}"
                stats.outcomes[f"{name}: {code}"] += 1
                return None
            data, code = self.wire.call(doc, **variables)
            self.trace[-1] += f" -> {code or 'ok'}"
            assert code is None, f"{name}: the model expected success, the server said {code}"
            assert data is not None
            stats.outcomes[f"{name}: ok"] += 1
            if callable(expected):
                expected(data)
            return data

        def pick_task(self, room: MRoom, *natural: str) -> MTask:
            """Mostly a task in one of the ``natural`` statuses for the action, sometimes any."""
            tasks = list(room.tasks.values())
            fitting = [t for t in tasks if t.status in natural]
            if fitting and self.natural():
                return self.pick(fitting)
            return self.pick(tasks)

        def natural(self) -> bool:
            """Mostly take the natural move (the one that makes progress), sometimes any."""
            return self.rnd.random() < 0.7

        def pick(self, items: list[T], label: str = "") -> T:
            return self.rnd.choice(items)

        def rooms_where(self, check: Any) -> list[MRoom]:
            return [r for r in self.rooms if check(r)]

        # --- one rule: an action drawn by weight. Hypothesis's own rule choice (swarm testing,
        # a lean towards "simple" draws) left the claims and handoffs that build the
        # interesting states too rare. -----------------------------------------------------

        def weight(self, action: str) -> int:
            """The base weight, lowered while the action could only be refused."""
            if action == "handoff" and not any(r.holder() for r in self.rooms):
                return 2
            if action == "classify":
                if any(self.unclassified(r) for r in self.rooms):
                    return 12
                if not any(r.holder() for r in self.rooms):
                    return 1
            if action == "claim" and not any(
                (a := r.active()) is not None and a.status == "pending" for r in self.rooms
            ):
                return 3
            return WEIGHTS[action]

        @staticmethod
        def unclassified(room: MRoom) -> bool:
            """Its holder holds a user's request that is not classified yet."""
            task = room.active()
            origin = room.message(task.origin) if task else None
            return (
                room.holder() is not None
                and task is not None
                and task.source == task.origin
                and origin is not None
                and origin.classification is None
            )

        def available(self, action: str) -> bool:
            if action == "create_room":
                return len(self.rooms) < MAX_ROOMS
            if action == "complete_room":
                return not self.completed and self.steps >= 20
            if action in NEEDS_TASKS:
                return any(r.tasks for r in self.rooms)
            if action == "lease_lapses":
                return any(r.holder() for r in self.rooms)
            if action == "replay_keyed":
                return bool(self.keyed)
            return True

        @rule(data=st.data())
        def act(self, data: st.DataObject) -> None:
            # Every choice of the step comes from one seeded Random: hypothesis's own draws
            # lean so hard towards "simple" values that the weights would mean little.
            # The step number is mixed in: hypothesis draws the same small seeds again and again.
            seed = data.draw(st.integers(0, 2**64 - 1), label="seed")
            self.rnd = random.Random(f"{seed}/{self.steps}")
            options = [a for a in WEIGHTS if self.available(a)]
            action = self.rnd.choices(options, [self.weight(a) for a in options])[0]
            try:
                getattr(self, f"do_{action}")()
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.recent()}") from exc

        # --- rooms --------------------------------------------------------------------------

        @initialize()
        def sign_in_and_create_room(self) -> None:
            data, code = self.wire.call(CREATE_GUEST, displayName="state machine")
            assert code is None and data is not None
            self.wire.token = data["createGuestSession"]["token"]
            self.create_room("pair")  # the usual team; more rooms (pair or solo) come later

        def do_create_room(self) -> None:
            self.create_room(self.rnd.choices(["pair", "solo"], [3, 1])[0])

        def create_room(self, team: str) -> None:
            roles, entry = TEAMS[team]
            body: dict[str, Any] = {"name": self.text("room")}
            if team == "pair":
                body["teamId"] = "pair"
            else:
                body["roles"] = roles
            data = self.run("createChatroom", CREATE_ROOM, lambda: None, input=body)
            assert data is not None
            room = MRoom(data["createChatroom"]["id"], list(roles), entry)
            room.participants = {r: "idle" for r in roles}
            self.rooms.append(room)

        # Completing a room ends most of what can happen in it: at most once per example,
        # and not before the example has had time to build some state.
        def do_complete_room(self) -> None:
            room = self.pick(self.rooms, "room")
            self.completed = True

            def predict() -> None:
                if room.status == "completed":
                    return
                room.status = "completed"
                for task in room.tasks.values():
                    if task.status in ("pending", "in_progress", "queued"):
                        task.status = "cancelled"
                room.queue.clear()
                room.participants = dict.fromkeys(room.roles, "idle")

            self.run("completeChatroom", COMPLETE_ROOM, predict, c=room.id)

        # --- messages -----------------------------------------------------------------------

        def do_send_request(self) -> None:
            keyed: bool = self.rnd.random() < 0.5
            room = self.pick(self.rooms, "room")
            target = self.rnd.choice([None, None, *room.roles])
            content = self.text("request")
            body: dict[str, Any] = {"chatroomId": room.id, "content": content}
            if target is not None:
                body["targetRole"] = target
            if keyed:
                body["idempotencyKey"] = self.key()

            def predict() -> Any:
                if room.status == "completed":
                    raise Expect("CONFLICT")
                busy = room.active() is not None

                def check(out: dict[str, Any]) -> None:
                    sent = out["sendMessage"]
                    msg = MMessage(
                        USER, "message", target or room.entry, content, sent["message"]["id"]
                    )
                    room.add_message(msg)
                    task = MTask(
                        sent["task"]["id"],
                        "queued" if busy else "pending",
                        content,
                        USER,
                        target,
                        msg.id,
                        msg.id,
                    )
                    assert sent["task"]["status"] == task.status.upper(), sent
                    room.tasks[task.id] = task
                    if busy:
                        room.queue.append(task.id)

                return check

            out = self.run("sendMessage", SEND, predict, input=body)
            if out is not None and keyed:
                self.keyed.append((SEND, {"input": body}, out))

        def do_agent_note(self) -> None:
            room = self.pick(self.rooms, "room")
            role = self.rnd.choice(room.roles)
            content = self.text("note")

            def predict() -> Any:
                if room.status == "completed":
                    raise Expect("CONFLICT")

                def check(out: dict[str, Any]) -> None:
                    assert out["sendMessage"]["task"] is None
                    room.add_message(
                        MMessage(
                            role, "message", None, content, out["sendMessage"]["message"]["id"]
                        )
                    )

                return check

            body = {"chatroomId": room.id, "content": content, "senderRole": role}
            self.run("sendMessage (agent note)", SEND, predict, input=body)

        # --- the baton ----------------------------------------------------------------------

        def do_claim(self) -> None:
            keyed: bool = self.rnd.random() < 0.5
            claimable = self.rooms_where(
                lambda r: (a := r.active()) is not None and a.status == "pending"
            )
            if claimable and self.natural():
                room = self.pick(claimable, "room")
                task = room.active()
                assert task is not None
                role = task.assigned_to or room.entry
            else:
                room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
                task = self.pick_task(room, "pending")
                role = self.rnd.choice(room.roles)
            body: dict[str, Any] = {"chatroomId": room.id, "taskId": task.id, "role": role}
            if keyed:
                body["idempotencyKey"] = self.key()

            def predict() -> Any:
                if task.status != "pending":
                    if task.attempt == 0:
                        raise Expect("TASK_NOT_CLAIMABLE")

                    def lost(out: dict[str, Any]) -> None:
                        got = out["claimTask"]
                        assert got["success"] is False, got
                        assert got["task"]["status"] == task.status.upper(), got

                    return lost
                if not room.routable(task, role):
                    raise Expect("TASK_NOT_CLAIMABLE")
                task.status = "in_progress"
                task.assigned_to = role
                task.attempt += 1
                source = room.message(task.source)
                if source is not None:
                    source.claimed_by = role
                room.participants[role] = "active"
                room.seen.add(role)

                def won(out: dict[str, Any]) -> None:
                    got = out["claimTask"]
                    assert got["success"] is True, got
                    assert (got["task"]["attempt"], got["task"]["assignedTo"]) == (
                        task.attempt,
                        role,
                    )

                return won

            out = self.run("claimTask", CLAIM, predict, input=body)
            if out is not None and keyed:
                self.keyed.append((CLAIM, {"input": body}, out))

        def do_handoff(self) -> None:
            keyed: bool = self.rnd.random() < 0.5
            rooms = self.rooms_where(lambda r: r.holder() is not None) or self.rooms
            room = self.pick(rooms, "room")
            holder = room.holder()
            if holder is not None and self.natural():
                sender = holder
            else:
                sender = self.rnd.choice(room.roles)
            others = [r for r in [*room.roles, USER] if r != sender]
            if self.natural():
                target = self.rnd.choice(others)
            else:
                target = self.rnd.choice([*room.roles, USER])
            content = self.text(f"handoff {sender} -> {target}")
            body: dict[str, Any] = {
                "chatroomId": room.id,
                "senderRole": sender,
                "targetRole": target,
                "content": content,
            }
            if keyed:
                body["idempotencyKey"] = self.key()

            def predict() -> Any:
                if target == sender:
                    raise Expect("BAD_USER_INPUT")
                task = room.active()
                if task is None or task.status != "in_progress" or task.assigned_to != sender:
                    raise Expect("NOT_TASK_HOLDER")
                if target == USER and "reviewer" in room.roles and sender != "reviewer":
                    origin = room.message(task.origin)
                    if (
                        origin is not None
                        and origin.effective == "new_feature"
                        and task.origin is not None
                        and not room.reviewed(task.origin)
                    ):
                        raise Expect("HANDOFF_NOT_ALLOWED")
                task.status = "completed"
                room.participants[sender] = "waiting"
                promoted = None if target != USER else room.promote_next()

                def check(out: dict[str, Any]) -> None:
                    got = out["sendHandoff"]
                    msg = MMessage(sender, "handoff", target, content, got["message"]["id"])
                    room.add_message(msg)
                    assert [t["id"] for t in got["completedTasks"]] == [task.id], got
                    if target != USER:
                        new = got["newTask"]
                        assert new is not None and new["status"] == "PENDING", got
                        room.tasks[new["id"]] = MTask(
                            new["id"], "pending", content, sender, target, msg.id, task.origin
                        )
                        assert got["promotedTask"] is None
                    else:
                        assert got["newTask"] is None, got
                        got_promoted = got["promotedTask"]["id"] if got["promotedTask"] else None
                        assert got_promoted == (promoted.id if promoted else None), got

                return check

            out = self.run("sendHandoff", HANDOFF, predict, input=body)
            if out is not None and keyed:
                self.keyed.append((HANDOFF, {"input": body}, out))

        def do_classify(self) -> None:
            # NEW_FEATURE most often: its chain is the one the handoff rule restricts.
            classification: str = self.rnd.choices(CLASSIFICATIONS, [2, 1, 1])[0]

            fresh = self.rooms_where(self.unclassified)
            if fresh and self.natural():
                room = self.pick(fresh, "room")
                role = room.holder() or ""
            else:
                rooms = self.rooms_where(lambda r: r.holder() is not None) or self.rooms
                room = self.pick(rooms, "room")
                holder = room.holder()
                if holder is not None and self.natural():
                    role = holder
                else:
                    role = self.rnd.choice(room.roles)
            value = classification.lower()

            def predict() -> Any:
                task = room.active()
                if task is None or task.status != "in_progress" or task.assigned_to != role:
                    raise Expect("NOT_TASK_HOLDER")
                origin = room.message(task.origin)
                if origin is None or task.source != task.origin or origin.sender != USER:
                    raise Expect("BAD_USER_INPUT")
                if origin.classification == value:
                    return None
                if origin.classification is not None:
                    raise Expect("CONFLICT")
                effective: str | None = value
                if value == "follow_up":
                    previous = room.message(room.last_origin)
                    if previous is None or previous.id == origin.id:
                        raise Expect("BAD_USER_INPUT")
                    effective = previous.effective
                origin.classification = value
                origin.effective = effective
                room.last_origin = origin.id
                return None

            body = {"chatroomId": room.id, "role": role, "classification": classification}
            self.run("classifyTask", CLASSIFY, predict, input=body)

        # --- the owner's task controls ------------------------------------------------------

        def do_add_backlog(self) -> None:
            room = self.pick(self.rooms, "room")
            content = self.text("backlog")

            def predict() -> Any:
                if room.status == "completed":
                    raise Expect("CONFLICT")

                def check(out: dict[str, Any]) -> None:
                    got = out["addBacklogTask"]
                    assert got["status"] == "BACKLOG"
                    room.tasks[got["id"]] = MTask(
                        got["id"], "backlog", content, USER, None, None, None
                    )

                return check

            body = {"chatroomId": room.id, "content": content}
            self.run("addBacklogTask", ADD_BACKLOG, predict, input=body)

        def do_edit_task(self) -> None:
            room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
            task = self.pick_task(room, "queued", "backlog")
            content = self.text("edited")

            def predict() -> None:
                if task.status not in ("queued", "backlog"):
                    raise Expect("CONFLICT")
                task.content = content

            body = {"chatroomId": room.id, "taskId": task.id, "content": content}
            self.run("updateTask", UPDATE, predict, input=body)

        def do_move_to_queue(self) -> None:
            room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
            task = self.pick_task(room, "backlog")

            def predict() -> None:
                if room.status == "completed" or task.status != "backlog":
                    raise Expect("CONFLICT")
                if room.active() is None:
                    task.status = "pending"
                else:
                    task.status = "queued"
                    room.queue.append(task.id)

            self.run("moveTaskToQueue", MOVE, predict, input={"chatroomId": room.id,
                                                              "taskId": task.id})  # fmt: skip

        def _finish(self, room: MRoom, task: MTask, status: str) -> None:
            was_active = task.status in ("pending", "in_progress")
            if task.status == "in_progress" and task.assigned_to is not None:
                room.participants[task.assigned_to] = "idle"
            if task.status == "queued":
                room.queue.remove(task.id)
            task.status = status
            if was_active:
                room.promote_next()

        def do_complete_task(self) -> None:
            force: bool = self.rnd.random() < 0.5
            room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
            task = self.pick_task(room, "queued", "backlog", "pending")

            def predict() -> None:
                if task.status in ("completed", "cancelled"):
                    raise Expect("CONFLICT")
                if task.status in ("pending", "in_progress") and not force:
                    raise Expect("BAD_USER_INPUT")
                self._finish(room, task, "completed")

            body = {"chatroomId": room.id, "taskId": task.id, "force": force}
            self.run("completeTask", COMPLETE, predict, input=body)

        def do_cancel_task(self) -> None:
            room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
            task = self.pick_task(room, "queued", "backlog", "pending")

            def predict() -> None:
                if task.status in ("completed", "cancelled"):
                    raise Expect("CONFLICT")
                self._finish(room, task, "cancelled")

            self.run("cancelTask", CANCEL, predict, input={"chatroomId": room.id,
                                                           "taskId": task.id})  # fmt: skip

        def do_release_task(self) -> None:
            room = self.pick(self.rooms_where(lambda r: r.tasks), "room")
            task = self.pick_task(room, "in_progress")

            def predict() -> None:
                if task.status != "in_progress":
                    raise Expect("CONFLICT")
                assert task.assigned_to is not None
                room.participants[task.assigned_to] = "idle"
                task.status = "pending"

            self.run("releaseTask", RELEASE, predict, input={"chatroomId": room.id,
                                                             "taskId": task.id})  # fmt: skip

        # --- presence, interrupts, leases ---------------------------------------------------

        def do_interrupt(self) -> None:
            room = self.pick(self.rooms, "room")

            def predict() -> None:
                if room.status == "completed":
                    raise Expect("CONFLICT")
                task = room.active()
                if task is not None and task.status == "in_progress":
                    task.status = "pending"
                room.add_message(MMessage(USER, "interrupt", None, INTERRUPT_TEXT))
                room.participants = dict.fromkeys(room.roles, "idle")

            self.run("interruptChatroom", INTERRUPT, predict, c=room.id)

        def _join_model(self, room: MRoom, role: str) -> None:
            if role not in room.seen:
                room.add_message(MMessage(role, "join", None, f"{role} joined the room."))
                room.seen.add(role)
            room.participants[role] = "active" if room.holder() == role else "waiting"

        def do_join(self) -> None:
            room = self.pick(self.rooms, "room")
            role = self.rnd.choice(room.roles)
            self.run("joinChatroom", JOIN, lambda: self._join_model(room, role), c=room.id,
                     r=role)  # fmt: skip

        def do_lease_lapses(self) -> None:
            """The holder's lease is pushed into the past; it lapses through the sweeper, the
            lazy expiry of joinChatroom, a late sendHandoff of the former holder (refused:
            NOT_TASK_HOLDER), or the former holder claiming the task again (attempt + 1)."""
            via: str = self.rnd.choice(["sweeper", "joinChatroom", "sendHandoff", "claimTask"])
            room = self.pick(self.rooms_where(lambda r: r.holder() is not None), "room")
            task = room.active()
            assert task is not None and task.assigned_to is not None
            holder = task.assigned_to
            self.wire.sql(
                "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
                uuid.UUID(task.id),
            )
            # Whichever way, the task goes back to pending for the same role; the holder idles.
            task.status = "pending"
            room.participants[holder] = "idle"
            name = f"lease lapses ({via})"
            if via == "sweeper":
                self.step(name)
                self._await_sweep(task.id)
                stats.outcomes[f"{name}: ok"] += 1
            elif via == "joinChatroom":
                role = self.rnd.choice(room.roles)
                self.run(name, JOIN, lambda: self._join_model(room, role), c=room.id, r=role)
            elif via == "sendHandoff":
                target = self.rnd.choice([r for r in [*room.roles, USER] if r != holder])
                body = {"chatroomId": room.id, "senderRole": holder, "targetRole": target,
                        "content": self.text("late handoff")}  # fmt: skip

                def refused() -> None:
                    raise Expect("NOT_TASK_HOLDER")

                self.run(name, HANDOFF, refused, input=body)
                # The refusal rolled its own expiry back; the sweeper makes it stick.
                self._await_sweep(task.id)
            else:

                def reclaimed() -> None:
                    task.status = "in_progress"
                    task.attempt += 1
                    source = room.message(task.source)
                    if source is not None:
                        source.claimed_by = holder
                    room.participants[holder] = "active"

                body = {"chatroomId": room.id, "taskId": task.id, "role": holder}
                self.run(name, CLAIM, reclaimed, input=body)

        def _await_sweep(self, task_id: str) -> None:
            for _ in range(200):
                rows = self.wire.sql("SELECT status FROM tasks WHERE id = $1", uuid.UUID(task_id))
                if rows[0]["status"] == "pending":
                    return
                self.wire.runner.run(asyncio.sleep(0.05))
            raise AssertionError(f"the sweeper never expired task {task_id}")

        # --- idempotency --------------------------------------------------------------------

        def do_replay_keyed(self) -> None:
            same_input: bool = self.rnd.random() < 0.5
            doc, variables, first = self.pick(self.keyed, "keyed call")
            body = dict(variables["input"])
            if same_input or doc == CLAIM:
                # The first answer again, whatever happened since; nothing changes.
                self.step("replay (same key, same input)")
                got, code = self.wire.call(doc, input=body)
                assert code is None and got == first, (got, code, first)
                stats.outcomes["replay (same key, same input): ok"] += 1
                return
            body["content"] = self.text("other content")
            self.step("replay (same key, other input)")
            got, code = self.wire.call(doc, input=body)
            assert code == "IDEMPOTENCY_KEY_REUSED", (got, code)
            stats.outcomes["replay (same key, other input): IDEMPOTENCY_KEY_REUSED"] += 1

        # --- the comparison, after every step -----------------------------------------------

        @invariant()
        def server_matches_model(self) -> None:
            if not self.rooms:
                return
            ids = [uuid.UUID(r.id) for r in self.rooms]
            try:
                _compare(self.wire, self.rooms, ids)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.recent()}") from exc

        def recent(self) -> str:
            rooms = ", ".join(f"{r.id} ({'+'.join(r.roles)})" for r in self.rooms)
            return f"rooms: {rooms}\nlast steps:\n  " + "\n  ".join(self.trace[-20:])

    return ChatroomMachine


def _snapshot(rooms: list[MRoom]) -> list[MRoom]:
    return copy.deepcopy(rooms)


def _restore(rooms: list[MRoom], saved: list[MRoom]) -> None:
    """A refusal changes nothing: put back whatever a prediction touched before raising."""
    rooms[:] = saved


def _compare(wire: Wire, rooms: list[MRoom], ids: list[uuid.UUID]) -> None:
    async def read() -> tuple[Any, ...]:
        conn = wire.conn
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            report = await collect_violations(conn, [str(i) for i in ids])
            tasks = await conn.fetch("SELECT * FROM tasks WHERE chatroom_id = ANY($1::uuid[])", ids)
            messages = await conn.fetch(
                "SELECT * FROM messages WHERE chatroom_id = ANY($1::uuid[]) ORDER BY seq", ids
            )
            people = await conn.fetch(
                "SELECT * FROM participants WHERE chatroom_id = ANY($1::uuid[])", ids
            )
            statuses = await conn.fetch(
                "SELECT id, status FROM chatrooms WHERE id = ANY($1::uuid[])", ids
            )
        return report, tasks, messages, people, statuses

    report, tasks, messages, people, statuses = wire.runner.run(read())
    report.assert_ok()
    room_status = {str(r["id"]): r["status"] for r in statuses}
    for room in rooms:
        rid = uuid.UUID(room.id)
        assert room_status[room.id] == room.status, (room.id, room_status[room.id], room.status)
        db_tasks = {str(t["id"]): t for t in tasks if t["chatroom_id"] == rid}
        assert set(db_tasks) == set(room.tasks), ("task ids", set(db_tasks) ^ set(room.tasks))
        for tid, task in room.tasks.items():
            row = db_tasks[tid]
            got = (
                row["status"],
                row["assigned_to"],
                row["attempt"],
                row["content"],
                row["created_by"],
                _str(row["source_message_id"]),
                _str(row["origin_message_id"]),
            )
            assert got == task.row(), f"task {tid}: server {got} != model {task.row()}"
        queued = sorted(
            (t for t in db_tasks.values() if t["status"] == "queued"),
            key=lambda t: t["queue_position"],
        )
        assert [str(t["id"]) for t in queued] == room.queue, "queue order"
        db_messages = [m for m in messages if m["chatroom_id"] == rid]
        got_messages = [
            (
                m["sender_role"],
                m["type"],
                m["target_role"],
                m["content"],
                m["classification"],
                m["effective_classification"],
                m["claimed_by_role"],
            )
            for m in db_messages
        ]
        assert got_messages == [m.row() for m in room.messages], (
            f"messages of room {room.id}: server {got_messages} != model "
            f"{[m.row() for m in room.messages]}"
        )
        for m, row in zip(room.messages, db_messages, strict=True):
            assert m.id is None or m.id == str(row["id"])
        got_people = {p["role"]: p["status"] for p in people if p["chatroom_id"] == rid}
        assert got_people == room.participants, (room.id, got_people, room.participants)
        # The tasks query: the active task first, then the queue in order, then the backlog.
        data, code = wire.call(TASKS, c=room.id, limit=500)
        assert code is None and data is not None
        order = [t["id"] for t in data["tasks"]]
        active = room.active()
        head = ([active.id] if active else []) + room.queue
        assert order[: len(head)] == head, ("tasks query order", order, head)
        backlog = {t.id for t in room.tasks.values() if t.status == "backlog"}
        assert set(order[len(head) : len(head) + len(backlog)]) == backlog


def _brief(variables: dict[str, Any]) -> str:
    """A step's variables, short: ids cut to 8 characters."""
    flat = dict(variables.get("input", {}), **{k: v for k, v in variables.items() if k != "input"})
    parts = []
    for k, v in flat.items():
        if k in ("chatroomId", "c", "idempotencyKey"):
            continue
        text = str(v)
        parts.append(f"{k}={text[:8] if k == 'taskId' else text[:40]}")
    room = str(flat.get("chatroomId") or flat.get("c") or "")[:8]
    return f"[{room}] " + " ".join(parts)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- the test -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def sm_server(
    module_db: PgDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    env = {
        "CHATROOM_MUTATIONS_PER_SECOND": "0",
        "CHATROOM_LEASE_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }
    log: Path = tmp_path_factory.mktemp("server") / "server.log"
    server = LiveServer(module_db.url, log, env)
    await server.start()
    yield server
    await server.stop()


async def test_the_server_behaves_like_the_model(
    sm_server: LiveServer, module_db: PgDatabase
) -> None:
    stats = Stats()
    factory = machine(sm_server, module_db.url, stats)
    config = settings(
        max_examples=MAX_EXAMPLES,
        stateful_step_count=STEPS_PER_EXAMPLE,
        deadline=None,
        database=None,
        # Shrinking replays examples against the live server for minutes; the failure message
        # already lists the last steps. RELIABILITY_SHRINK=1 asks for a minimal example.
        phases=[p for p in Phase if p != Phase.shrink or os.environ.get("RELIABILITY_SHRINK")],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    try:
        await asyncio.to_thread(run_state_machine_as_test, factory, settings=config)
    finally:
        print(
            f"\nstate machine: {stats.examples} examples, {stats.steps} steps "
            f"({dict(stats.rules.most_common())})"
        )
        print(f"state machine: outcomes {dict(sorted(stats.outcomes.items()))}")
    assert "unexpected error" not in sm_server.log_text()
