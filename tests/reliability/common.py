"""Shared pieces of the reliability tests, on top of the shared layer (``tests.support.api``,
whose documents and wrappers every step sends).

- ``RetryingClient``: GraphQL over HTTP that retries a request (same body, so the same
  idempotency key) on connection errors, timeouts and 5xx answers, and on chosen GraphQL
  error codes (INTERNAL while the database is down). It counts its retries. It executes
  documents, so ``Api(client)`` gives it every wrapper.
- ``run_cycle``/``verify_cycles``: the handoff cycle (user -> builder -> reviewer -> user) with
  the cycle number in every content, and the check that each step exists exactly once.
- ``EventWatcher``: a roomEvents subscriber that resumes from the last seq it saw whenever its
  websocket or subscription fails, and records every event it was sent (duplicates included).
- ``check_invariants``: the database-level invariants every test ends with, read with asyncpg
  in one REPEATABLE READ snapshot (bypassing the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.support import dbutil
from tests.support.api import Api
from tests.support.documents import ROOM_EVENTS, TASK_AVAILABLE
from tests.support.gql_client import HasUrls, gql_ws
from tests.support.pg import asyncpg_dsn
from tests.support.room_rows import db_events

# The per-token mutation rate limit would turn load into RATE_LIMITED errors.
NO_RATE_LIMIT = {"CHATROOM_MUTATIONS_PER_SECOND": "0"}
# How long a reliability test waits for a condition (a restart may be in the way).
WAIT = 15.0


class GraphQLFailure(Exception):
    """The server answered with GraphQL errors (a refusal, not a transport failure)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {}
        self.errors = errors
        self.code: str | None = (first.get("extensions") or {}).get("code")
        super().__init__(f"{self.code}: {first.get('message')}")


# --- HTTP with retries --------------------------------------------------------------------------


_TRANSPORT_REASONS = {"ConnectError", "ConnectTimeout", "RemoteProtocolError", "ReadError"}


class RetryingClient:
    """One client (its own httpx connection pool) that retries until the request succeeds.

    A retry sends the identical body, so a keyed mutation keeps its idempotency key: whatever
    happened to the first attempt (rolled back with the killed server, or committed with its
    answer lost) the retry gets the one committed result.
    """

    def __init__(
        self,
        server: HasUrls,
        token: str | None,
        *,
        retry_codes: Iterable[str] = (),
        give_up_after: float = 90.0,
        timeout: float = 15.0,
    ) -> None:
        self.server = server
        self.retry_codes = frozenset(retry_codes)
        self.give_up_after = give_up_after
        self.calls = 0
        self.retries = 0
        self.reasons: Counter[str] = Counter()
        # (idempotencyKey, wall-clock time of the attempt that succeeded) of keyed calls that
        # needed a retry: a key recorded before that time means the retry was answered from
        # the idempotency record (the first attempt had committed; its answer was lost).
        self.retried_keys: list[tuple[str, float]] = []
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(timeout=timeout, trust_env=False, headers=headers)

    async def __aenter__(self) -> RetryingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        self.calls += 1
        deadline = time.monotonic() + self.give_up_after
        delay = 0.01
        retried = False
        while True:
            sent_at = time.time()
            try:
                resp = await self._http.post(
                    self.server.http_url, json={"query": doc, "variables": variables}
                )
            except httpx.TransportError as exc:  # refused, reset, closed mid-answer, timeout
                reason = type(exc).__name__
            else:
                if resp.status_code >= 500:
                    reason = f"HTTP {resp.status_code}"
                else:
                    body = resp.json()
                    if not body.get("errors"):
                        data: dict[str, Any] = body["data"]
                        key = (variables.get("input") or {}).get("idempotencyKey")
                        if retried and key:
                            self.retried_keys.append((key, sent_at))
                        return data
                    failure = GraphQLFailure(body["errors"])
                    if failure.code not in self.retry_codes:
                        raise failure
                    reason = str(failure.code)
            retried = True
            self.retries += 1
            self.reasons[reason] += 1
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"request still failing after {self.give_up_after:.0f}s (last: {reason})"
                )
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            # A refused connection costs nothing: retry often, so a restarted server is used
            # at once. Errors from a server that is up (database away) back off further.
            delay = min(delay * 2, 0.1 if reason in _TRANSPORT_REASONS else 0.5)


async def new_owner(server: HasUrls, name: str = "reliability") -> tuple[str, str]:
    """A guest account: (token, user id)."""
    async with RetryingClient(server, None) as c:
        guest = await Api(c).create_guest(name)
    return str(guest["token"]), str(guest["user"]["id"])


async def new_room(client: RetryingClient, name: str, **fields: Any) -> str:
    return str((await Api(client).create_room(name=name, **fields))["id"])


# --- the handoff cycle ----------------------------------------------------------------------------


def cycle_contents(tag: str, n: int) -> tuple[str, str, str]:
    """The three contents of cycle ``n``: the request and the two handoffs."""
    return (
        f"{tag} cycle {n}: request",
        f"{tag} cycle {n}: builder -> reviewer",
        f"{tag} cycle {n}: reviewer -> user",
    )


@dataclass
class CycleResult:
    """What the client was told: the ids it will hold the database to."""

    n: int
    request_id: str
    handoff_ids: tuple[str, str]
    task_ids: tuple[str, str]


async def run_cycle(client: RetryingClient, room_id: str, tag: str, n: int) -> CycleResult:
    """user message -> builder claims -> builder hands to reviewer -> reviewer claims ->
    reviewer hands to user. Every mutation carries a key unique to (tag, n, step)."""
    api = Api(client)
    request, to_reviewer, to_user = cycle_contents(tag, n)
    key = f"{tag}-{n}"
    sent = await api.send(room_id, request, idempotencyKey=f"{key}-send")
    task = sent["task"]
    assert task is not None and task["status"] == "PENDING", (n, sent)
    claimed = await _claim(api, room_id, task["id"], "builder", f"{key}-claim-builder")
    assert claimed["task"]["id"] == task["id"], claimed
    handed = await _handoff(api, room_id, "builder", "reviewer", to_reviewer, f"{key}-h1")
    new_task = handed["newTask"]
    assert new_task is not None and new_task["assignedTo"] == "reviewer", (n, handed)
    assert [t["id"] for t in handed["completedTasks"]] == [task["id"]], (n, handed)
    await _claim(api, room_id, new_task["id"], "reviewer", f"{key}-claim-reviewer")
    back = await _handoff(api, room_id, "reviewer", "user", to_user, f"{key}-h2")
    assert back["newTask"] is None and back["promotedTask"] is None, (n, back)
    assert [t["id"] for t in back["completedTasks"]] == [new_task["id"]], (n, back)
    return CycleResult(
        n,
        sent["message"]["id"],
        (handed["message"]["id"], back["message"]["id"]),
        (task["id"], new_task["id"]),
    )


async def _claim(api: Api, room_id: str, task_id: str, role: str, key: str) -> dict[str, Any]:
    claimed = await api.claim(room_id, task_id, role, idempotencyKey=key)
    assert claimed["success"] is True, (key, claimed)
    return claimed


async def _handoff(
    api: Api, room_id: str, sender: str, target: str, content: str, key: str
) -> dict[str, Any]:
    handed = await api.handoff(room_id, sender, target, content, idempotencyKey=key)
    assert handed["message"]["content"] == content, (key, handed)
    return handed


async def verify_cycles(url: str, room_id: str, tag: str, results: Sequence[CycleResult]) -> int:
    """Every cycle the client completed left exactly its three messages, in order, and its two
    tasks, completed, each claimed once; nothing else is in the room. Returns rows checked."""
    rid = uuid.UUID(room_id)
    messages = await dbutil.fetch(
        url, "SELECT * FROM messages WHERE chatroom_id = $1 ORDER BY seq", rid
    )
    tasks = {
        r["id"]: r
        for r in await dbutil.fetch(url, "SELECT * FROM tasks WHERE chatroom_id = $1", rid)
    }
    keys = await dbutil.fetchval(
        url, "SELECT count(*) FROM idempotency_records WHERE key LIKE $1", f"{tag}-%"
    )
    expected: list[tuple[Any, ...]] = []
    for r in results:
        request, to_reviewer, to_user = cycle_contents(tag, r.n)
        expected += [
            ("user", "message", "builder", request),
            ("builder", "handoff", "reviewer", to_reviewer),
            ("reviewer", "handoff", "user", to_user),
        ]
    actual = [(m["sender_role"], m["type"], m["target_role"], m["content"]) for m in messages]
    if actual != expected:
        counts = Counter(a[3] for a in actual)
        doubled = sorted(c for c, k in counts.items() if k > 1)
        lost = sorted({e[3] for e in expected} - set(counts))
        extra = sorted(set(counts) - {e[3] for e in expected})
        raise AssertionError(
            f"room {tag}: {len(actual)} messages, expected {len(expected)}; doubled {doubled[:5]}"
            f" lost {lost[:5]} unexpected {extra[:5]}"
        )
    assert len(tasks) == 2 * len(results), (tag, len(tasks), len(results))
    for i, r in enumerate(results):
        req, h1, h2 = messages[3 * i : 3 * i + 3]
        assert [str(req["id"]), str(h1["id"]), str(h2["id"])] == [r.request_id, *r.handoff_ids]
        assert h2["task_id"] is None, (tag, r.n, "a handoff to user creates no task")
        for source, tid, role, creator in (
            (req, r.task_ids[0], "builder", "user"),
            (h1, r.task_ids[1], "reviewer", "builder"),
        ):
            task = tasks[uuid.UUID(tid)]
            assert source["task_id"] == task["id"], (tag, r.n, role)
            got = (task["status"], task["assigned_to"], task["attempt"], task["created_by"])
            assert got == ("completed", role, 1, creator), (tag, r.n, got)
            assert task["source_message_id"] == source["id"], (tag, r.n, role)
            assert task["origin_message_id"] == req["id"], (tag, r.n, role)
    # Five keyed mutations per cycle, each recorded once.
    assert keys == 5 * len(results), (tag, keys, len(results))
    return len(messages) + len(tasks)


# --- live subscribers -------------------------------------------------------------------------


@dataclass(kw_only=True)
class Resubscriber:
    """One subscription that subscribes again after any failure (server killed, database down,
    websocket closed), with backoff, as an agent's CLI would; subclasses name the document
    and take each result. Counts its connections and its failures by kind."""

    connects: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    ended: bool = False
    _task: asyncio.Task[None] | None = None
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    def _start(self, name: str) -> None:
        self._task = asyncio.create_task(self._run(), name=name)

    def _server(self, turn: int) -> tuple[HasUrls, str]:
        """Where (the ``turn``-th connection) and with which token to subscribe."""
        raise NotImplementedError

    def _subscription(self) -> tuple[str, dict[str, Any]]:
        """The document and its variables, for the next subscription."""
        raise NotImplementedError

    def _take(self, result: dict[str, Any]) -> bool:
        """Record one result; True ends the subscriber for good."""
        raise NotImplementedError

    def _again(self) -> bool:
        """Whether to subscribe again after a failure."""
        return True

    async def _run(self) -> None:
        delay = 0.05
        turn = 0
        while True:
            server, token = self._server(turn)
            turn += 1
            try:
                async with gql_ws(server, token) as ws:
                    self.connects += 1
                    doc, variables = self._subscription()
                    async for result in ws.subscribe(doc, **variables):
                        done = self._take(result)
                        self._progress.set()
                        delay = 0.05
                        if done:
                            self.ended = True
                            return
                self.failures["completed by server"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # TransportQueryError, TransportClosed, OSError, ...
                self.failures[_describe(exc)] += 1
            if not self._again():
                self.ended = True
                self._progress.set()
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)

    async def _until(self, reached: Any, failure: Any, within: float) -> None:
        """Wait until ``reached()``; after ``within`` seconds (or once ended without it) fail
        with ``failure()``."""
        deadline = time.monotonic() + within
        while not reached():
            left = deadline - time.monotonic()
            if left <= 0 or self.ended:
                raise AssertionError(
                    f"{failure()} within {within}s (connects {self.connects}, "
                    f"failures {dict(self.failures)})"
                )
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class EventWatcher(Resubscriber):
    """A roomEvents subscriber that never gives up: after any failure it reconnects to
    ``servers[i]`` (round robin) and resumes with ``afterSeq`` = the last seq it saw. Every
    event it is sent is recorded."""

    servers: Sequence[HasUrls]
    token: str
    room_id: str
    after_seq: int
    name: str = ""
    cursor: int = 0
    seqs: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> EventWatcher:
        self.cursor = self.after_seq
        self._start(f"watcher {self.name}")
        return self

    def _server(self, turn: int) -> tuple[HasUrls, str]:
        return self.servers[turn % len(self.servers)], self.token

    def _subscription(self) -> tuple[str, dict[str, Any]]:
        return ROOM_EVENTS, {"c": self.room_id, "after": self.cursor}

    def _take(self, result: dict[str, Any]) -> bool:
        event = result["roomEvents"]
        self.events.append(event)
        self.seqs.append(int(event["seq"]))
        self.cursor = max(self.cursor, int(event["seq"]))
        return False

    async def wait_for(self, seq: int, within: float) -> None:
        await self._until(
            lambda: self.cursor >= seq,
            lambda: f"watcher {self.name} reached seq {self.cursor}, not {seq},",
            within,
        )

    def check(self, expected: Sequence[tuple[int, str, str]]) -> int:
        """Exactly the expected (seq, kind, object) list (``room_log``): every event once, in
        seq order, each carrying the object (and the status) the change gave it."""
        got = [(int(e["seq"]), str(e["kind"]).lower(), _event_ref(e)) for e in self.events]
        if got != list(expected):
            dupes = sorted(s for s, k in Counter(self.seqs).items() if k > 1)
            missing = sorted({e[0] for e in expected} - set(self.seqs))
            raise AssertionError(
                f"watcher {self.name} from seq {self.after_seq}: got {len(got)} events, expected "
                f"{len(expected)}; duplicates {dupes[:10]}, missing {missing[:10]}, first "
                f"difference at {_first_difference(got, list(expected))}"
            )
        return len(got)


def _describe(exc: Exception) -> str:
    """An exception's type, and its GraphQL error code if it carries one."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return f"{type(exc).__name__} {(errors[0].get('extensions') or {}).get('code')}"
    return type(exc).__name__


def _first_difference(a: Sequence[Any], b: Sequence[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"index {i}: got {x}, expected {y}"
    return f"index {min(len(a), len(b))} (lengths {len(a)} vs {len(b)})"


async def replayed(url: str, clients: Iterable[RetryingClient]) -> int:
    """How many retried keyed calls were answered from an idempotency record written by an
    earlier attempt (committed, but its answer never reached the client)."""
    retried = [kt for c in clients for kt in c.retried_keys]
    if not retried:
        return 0
    rows = await dbutil.fetch(
        url,
        "SELECT key, created_at FROM idempotency_records WHERE key = ANY($1::text[])",
        [k for k, _ in retried],
    )
    created = {r["key"]: r["created_at"].timestamp() for r in rows}
    return sum(1 for key, sent_at in retried if created.get(key, sent_at) < sent_at)


def _event_ref(event: dict[str, Any]) -> str:
    """What a delivered event is about: the message id, the task id and the status it was
    given, the participant and its status, or the room."""
    if event.get("message"):
        return str(event["message"]["id"])
    if event.get("task"):
        return f"{event['task']['id']} {str(event['task']['status']).lower()}"
    if event.get("participant"):
        p = event["participant"]
        return f"{p['role']} {str(p['status']).lower()}"
    return "room"


async def room_log(url: str, room_id: str) -> list[tuple[int, str, str]]:
    """(seq, kind, object) of every committed event of a room, in order, as ``_event_ref``
    describes a delivered one."""
    out = []
    for r in await db_events(url, room_id):
        payload = r["payload"]
        payload = json.loads(payload) if isinstance(payload, str) else payload
        event = {k: payload.get(k) for k in ("message", "task", "participant")}
        out.append((int(r["seq"]), str(r["kind"]), _event_ref(event)))
    return out


# --- invariants -----------------------------------------------------------------------------------


@dataclass
class InvariantReport:
    rooms: int = 0
    messages: int = 0
    tasks: int = 0
    events: int = 0
    idempotency_records: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.violations.append(text)

    def assert_ok(self) -> None:
        if self.violations:
            shown = "\n  ".join(self.violations[:25])
            raise AssertionError(f"{len(self.violations)} invariant violation(s):\n  {shown}")


async def check_invariants(url: str, room_ids: Iterable[str] | None = None) -> InvariantReport:
    """Read the rooms (all, or the given ones) and their owners' idempotency records in one
    snapshot, check every invariant, and fail listing each violation."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            report = await collect_violations(conn, None if room_ids is None else list(room_ids))
    finally:
        await conn.close()
    report.assert_ok()
    return report


async def _by_room(
    conn: asyncpg.Connection, sql: str, ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    out: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
    for row in await conn.fetch(sql, ids):
        out[row["chatroom_id"]].append(row)
    return out


async def collect_violations(
    conn: asyncpg.Connection, room_ids: list[str] | None
) -> InvariantReport:
    """Every invariant of the rooms (all, or the given ones) on an open connection; run it in
    a REPEATABLE READ transaction for a consistent snapshot."""
    report = InvariantReport()
    if room_ids is None:
        rooms = await conn.fetch("SELECT * FROM chatrooms")
    else:
        rooms = await conn.fetch(
            "SELECT * FROM chatrooms WHERE id = ANY($1::uuid[])", [uuid.UUID(r) for r in room_ids]
        )
        if len(rooms) != len(set(room_ids)):
            report.fail(f"rooms missing: asked {len(set(room_ids))}, found {len(rooms)}")
    ids = [r["id"] for r in rooms]
    where = " WHERE chatroom_id = ANY($1::uuid[])"
    messages = await _by_room(conn, "SELECT * FROM messages" + where + " ORDER BY seq", ids)
    tasks = await _by_room(conn, "SELECT * FROM tasks" + where, ids)
    events = await _by_room(conn, "SELECT * FROM room_events" + where + " ORDER BY seq", ids)
    people = await _by_room(conn, "SELECT * FROM participants" + where, ids)
    report.rooms = len(rooms)
    for room in rooms:
        _check_room(
            report, room, messages[room["id"]], tasks[room["id"]], events[room["id"]],
            people[room["id"]],
        )  # fmt: skip
    if room_ids is None:
        for table in ("messages", "tasks", "room_events", "participants"):
            orphans = await conn.fetchval(
                f"SELECT count(*) FROM {table} x WHERE NOT EXISTS "
                "(SELECT 1 FROM chatrooms c WHERE c.id = x.chatroom_id)"
            )
            if orphans:
                report.fail(f"{orphans} {table} rows without a room")
    owners = list({r["owner_id"] for r in rooms})
    records = await conn.fetch(
        "SELECT * FROM idempotency_records WHERE user_id = ANY($1::uuid[])", owners
    )
    all_messages = {m["id"]: m for ms in messages.values() for m in ms}
    all_tasks = {t["id"]: t for ts in tasks.values() for t in ts}
    room_set = set(ids)
    for record in records:
        _check_record(report, record, all_messages, all_tasks, room_set, room_ids is not None)
    report.idempotency_records = len(records)
    return report


def _check_room(
    report: InvariantReport,
    room: asyncpg.Record,
    messages: list[asyncpg.Record],
    tasks: list[asyncpg.Record],
    events: list[asyncpg.Record],
    participants: list[asyncpg.Record],
) -> None:
    name = f"room {room['id']}"
    report.messages += len(messages)
    report.tasks += len(tasks)
    report.events += len(events)
    fail = report.fail
    # Per-room sequences: gapless 1..N and equal to the room's counters.
    seqs = [m["seq"] for m in messages]
    if seqs != list(range(1, len(seqs) + 1)) or room["last_message_seq"] != len(seqs):
        fail(f"{name}: message seqs not 1..{room['last_message_seq']}: {_runs(seqs)}")
    eseqs = [e["seq"] for e in events]
    if eseqs != list(range(1, len(eseqs) + 1)) or room["last_event_seq"] != len(eseqs):
        fail(f"{name}: event seqs not 1..{room['last_event_seq']}: {_runs(eseqs)}")
    # The baton rule.
    active = [t for t in tasks if t["status"] in ("pending", "in_progress")]
    if len(active) > 1:
        fail(f"{name}: {len(active)} pending/in-progress tasks")
    if room["status"] == "completed" and any(
        t["status"] in ("pending", "in_progress", "queued") for t in tasks
    ):
        fail(f"{name}: a completed room still has open tasks")
    # Participants: exactly one per team role; "active" is the holder of the in-progress task.
    roles = sorted(p["role"] for p in participants)
    if roles != sorted(room["team_roles"]):
        fail(f"{name}: participants {roles} != team {sorted(room['team_roles'])}")
    holder = next((t["assigned_to"] for t in active if t["status"] == "in_progress"), None)
    for p in participants:
        if (p["status"] == "active") != (p["role"] == holder):
            fail(f"{name}: participant {p['role']} is {p['status']}, in-progress holder {holder}")
    # Tasks: fields agree with the status; links agree both ways.
    by_id = {m["id"]: m for m in messages}
    positions = [t["queue_position"] for t in tasks if t["status"] == "queued"]
    if None in positions or len(set(positions)) != len(positions):
        fail(f"{name}: queued positions {positions}")
    if any(p is not None and p > room["next_queue_position"] for p in positions):
        fail(f"{name}: queue position beyond the room counter")
    for t in tasks:
        tn = f"{name} task {t['id']} ({t['status']})"
        if t["status"] != "queued" and t["queue_position"] is not None:
            fail(f"{tn}: has a queue position")
        if (t["status"] in ("completed", "cancelled")) != (t["completed_at"] is not None):
            fail(f"{tn}: completed_at {t['completed_at']}")
        if (t["status"] == "in_progress") != (t["lease_expires_at"] is not None):
            fail(f"{tn}: lease {t['lease_expires_at']}")
        if t["status"] == "in_progress" and (t["assigned_to"] is None or t["started_at"] is None):
            fail(f"{tn}: in progress without holder or start")
        if (t["attempt"] == 0) != (t["started_at"] is None):
            fail(f"{tn}: attempt {t['attempt']} but started_at {t['started_at']}")
        if t["source_message_id"] is not None:
            src = by_id.get(t["source_message_id"])
            if src is None or src["task_id"] != t["id"]:
                fail(f"{tn}: source message missing or not linked back")
        elif t["created_by"] != "user":
            fail(f"{tn}: no source message but created by {t['created_by']}")
        if t["origin_message_id"] is not None:
            origin = by_id.get(t["origin_message_id"])
            if origin is None or origin["sender_role"] != "user" or origin["type"] != "message":
                fail(f"{tn}: origin is not a user request of this room")
    task_ids = {t["id"] for t in tasks}
    for m in messages:
        mn = f"{name} message seq {m['seq']} ({m['type']} {m['sender_role']}->{m['target_role']})"
        makes_task = (m["type"] == "message" and m["sender_role"] == "user") or (
            m["type"] == "handoff" and m["target_role"] != "user"
        )
        if makes_task != (m["task_id"] is not None):
            fail(f"{mn}: task_id {m['task_id']}")
        if m["task_id"] is not None and m["task_id"] not in task_ids:
            fail(f"{mn}: its task is in another room")
    _check_log(report, name, events, messages, tasks, participants)


def _check_log(
    report: InvariantReport,
    name: str,
    events: list[asyncpg.Record],
    messages: list[asyncpg.Record],
    tasks: list[asyncpg.Record],
    participants: list[asyncpg.Record],
) -> None:
    """Replaying the event log gives today's rows: the last snapshot of each task, message and
    participant in the log shows its current status (so no change escaped the log)."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        payload = e["payload"]
        if isinstance(payload, str):
            payload = json.loads(payload)
        kind = e["kind"]
        if kind in ("task_created", "task_updated"):
            last[("task", payload["task"]["id"])] = payload["task"]
        elif kind in ("message_created", "message_updated"):
            last[("message", payload["message"]["id"])] = payload["message"]
        elif kind == "participant_updated":
            last[("participant", payload["participant"]["role"])] = payload["participant"]
        elif kind != "room_updated":
            report.fail(f"{name}: unknown event kind {kind}")
    for t in tasks:
        snap = last.pop(("task", str(t["id"])), None)
        now = (t["status"], t["assigned_to"], t["attempt"], t["content"])
        if snap is None:
            report.fail(f"{name}: task {t['id']} never appears in the log")
        elif (snap["status"], snap["assigned_to"], snap["attempt"], snap["content"]) != now:
            report.fail(f"{name}: task {t['id']} is {now}, log says {snap['status']}")
    for m in messages:
        snap = last.pop(("message", str(m["id"])), None)
        now = (m["seq"], m["type"], m["content"], m["classification"])
        if snap is None:
            report.fail(f"{name}: message seq {m['seq']} never appears in the log")
        elif (snap["seq"], snap["type"], snap["content"], snap["classification"]) != now:
            report.fail(f"{name}: message seq {m['seq']} differs from its last logged snapshot")
    for p in participants:
        snap = last.pop(("participant", p["role"]), None)
        logged = snap["status"] if snap else "idle"
        if logged != p["status"]:
            report.fail(f"{name}: participant {p['role']} is {p['status']}, log says {logged}")
    for (kind, key), _ in last.items():
        report.fail(f"{name}: the log names a {kind} {key} that does not exist")


def _check_record(
    report: InvariantReport,
    record: asyncpg.Record,
    messages: dict[uuid.UUID, asyncpg.Record],
    tasks: dict[uuid.UUID, asyncpg.Record],
    rooms: set[uuid.UUID],
    partial: bool,
) -> None:
    """A stored response names rows that exist and agree with it (a retry replays the truth)."""
    rn = f"idempotency {record['operation']} {record['key']!r}"
    response = record["response"]
    if isinstance(response, str):
        response = json.loads(response)
    if response is None:
        report.fail(f"{rn}: committed without a response")
        return

    def room_of(snap: dict[str, Any]) -> uuid.UUID:
        return uuid.UUID(snap["chatroom_id"])

    def message(snap: dict[str, Any] | None, what: str) -> None:
        if snap is None or room_of(snap) not in rooms:
            return
        row = messages.get(uuid.UUID(snap["id"]))
        if row is None:
            report.fail(f"{rn}: {what} {snap['id']} does not exist")
        elif (row["seq"], row["content"], row["type"]) != (
            snap["seq"],
            snap["content"],
            snap["type"],
        ):
            report.fail(f"{rn}: {what} differs from the row")

    def task(snap: dict[str, Any] | None, what: str, *, final: bool = False) -> None:
        if snap is None or room_of(snap) not in rooms:
            return
        row = tasks.get(uuid.UUID(snap["id"]))
        if row is None:
            report.fail(f"{rn}: {what} {snap['id']} does not exist")
            return
        if row["chatroom_id"] != room_of(snap) or row["created_by"] != snap["created_by"]:
            report.fail(f"{rn}: {what} differs from the row")
        if final and row["status"] != snap["status"]:
            report.fail(f"{rn}: {what} is {row['status']}, response said {snap['status']}")
        if row["attempt"] < snap["attempt"]:
            report.fail(f"{rn}: {what} attempt went back")

    op = record["operation"]
    if op == "sendMessage":
        message(response["message"], "message")
        task(response.get("task"), "task")
        if (
            response.get("task")
            and response["task"]["source_message_id"] != response["message"]["id"]
        ):
            report.fail(f"{rn}: task and message do not belong together")
    elif op == "claimTask":
        task(response["task"], "task")
        message(response.get("message"), "source message")
    elif op == "sendHandoff":
        message(response["message"], "handoff message")
        for t in response["completedTasks"]:
            task(t, "completed task", final=True)  # completed is final
        task(response.get("newTask"), "new task")
        task(response.get("promotedTask"), "promoted task")
    elif op == "createChatroom":
        if uuid.UUID(response["room"]["id"]) not in rooms and not partial:
            report.fail(f"{rn}: room {response['room']['id']} does not exist")
    else:
        report.fail(f"{rn}: unknown operation")


def _runs(seqs: Sequence[int]) -> str:
    """A short description of a sequence: its length, ends and first gap/duplicate."""
    if not seqs:
        return "empty"
    for i, (a, b) in enumerate(itertools.pairwise(seqs)):
        if b != a + 1:
            return f"{len(seqs)} values {seqs[0]}..{seqs[-1]}, break at index {i + 1}: {a} -> {b}"
    return f"{len(seqs)} values {seqs[0]}..{seqs[-1]}"


@dataclass
class TaskWaiter(Resubscriber):
    """A taskAvailable subscriber. With ``reconnect`` it subscribes again after any failure
    (as an agent's CLI would); a SUPERSEDED or INTERRUPT delivery ends it for good."""

    server: HasUrls
    token: str
    room_id: str
    role: str
    reconnect: bool = True
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> TaskWaiter:
        self._start(f"waiter {self.role}")
        return self

    def _server(self, turn: int) -> tuple[HasUrls, str]:
        return self.server, self.token

    def _subscription(self) -> tuple[str, dict[str, Any]]:
        return TASK_AVAILABLE, {"c": self.room_id, "r": self.role}

    def _take(self, result: dict[str, Any]) -> bool:
        got = result["taskAvailable"]
        self.deliveries.append(got)
        return bool(got["kind"] in ("SUPERSEDED", "INTERRUPT"))

    def _again(self) -> bool:
        return self.reconnect

    async def next_delivery(self, after: int, within: float = WAIT) -> dict[str, Any]:
        """The delivery at index ``after`` (0 = the first), waiting for it."""
        await self._until(
            lambda: len(self.deliveries) > after,
            lambda: f"waiter {self.role}: no delivery #{after + 1} (got {self.deliveries})",
            within,
        )
        return self.deliveries[after]


async def waiter_id(url: str, room_id: str, role: str) -> uuid.UUID | None:
    """The role's registered waiter (participants.waiter_id), read from the database."""
    value: uuid.UUID | None = await dbutil.fetchval(
        url,
        "SELECT waiter_id FROM participants WHERE chatroom_id = $1 AND role = $2",
        uuid.UUID(room_id),
        role,
    )
    return value
