"""Subscription results shared by every subscriber with the same document: each event is
executed once per (document, variables that matter, event) and its JSON encoded once.

Why: one event to 1,000 roomEvents subscribers used to run the selection set over the event
and encode the result 1,000 times, the largest share of the server's CPU per delivery
(docs/benchmarks.md). The event's GraphQL object is already one per event (EventViews in
subscription.py), so what a document selects from it depends only on the document, on the
variables used below the root field, and, for a field that answers per caller (PER_CALLER),
on the caller, whose token then joins the key. What stays per subscriber: its subscription
generator (its cursor, and its access checked before each yield), Strawberry's extensions
around each result, and the frame that carries its operation id. A result with errors is
never shared: each subscriber then executes for itself, so errors stay its own.

Two hooks, both small: `SharedEventExecutor` is the schema's graphql-core executor (only a
subscription's per-event executions change; queries and mutations run as before), and
`encode_message` is the websocket view's JSON encoder (a `next`/`data` frame whose data is a
shared result reuses that result's encoding; everything else is encoded as before)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from graphql import ExecutionResult, FieldNode, Node, OperationDefinitionNode, VariableNode
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from chatroom.schema.types import RoomEvent

# Only these payloads are one object per event for many subscribers (EventViews); anything
# else (a taskAvailable delivery is one waiter's own) would only push real entries out.
SHARED_PAYLOADS: tuple[type, ...] = (RoomEvent,)
# Fields whose value depends on who asks (Chatroom.myRole reads the caller's membership): a
# document selecting one shares its results only among subscriptions of the same token.
PER_CALLER = frozenset({"myRole"})


@dataclass(frozen=True)
class _Shape:
    """What of an operation decides its per-event result, worked out once per document."""

    operation: OperationDefinitionNode
    variables: tuple[str, ...]  # used below the root field (its own arguments pick the events)
    per_caller: bool


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for key in node.keys:
        value = getattr(node, key, None)
        for child in value if isinstance(value, tuple | list) else (value,):
            if isinstance(child, Node):
                yield from _nodes(child)


def _shape(operation: OperationDefinitionNode, fragments: Iterable[Node]) -> _Shape:
    # Below the root field, plus every fragment of the document (more than needed is safe:
    # a variable that does not matter only splits the sharing).
    roots = [
        selection.selection_set
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode) and selection.selection_set is not None
    ]
    variables: set[str] = set()
    per_caller = False
    for top in (*roots, *fragments):
        for node in _nodes(top):
            if isinstance(node, VariableNode):
                variables.add(node.name.value)
            elif isinstance(node, FieldNode) and node.name.value in PER_CALLER:
                per_caller = True
    return _Shape(operation, tuple(sorted(variables)), per_caller)


@dataclass
class _Shared:
    operation: OperationDefinitionNode
    payload: Any  # the event object: kept so its id cannot be reused while this entry lives
    result: ExecutionResult | None = None
    pending: asyncio.Future[ExecutionResult] | None = None
    encoded: str | None = None


class SharedResults:
    """The newest MAX per-event results, by (operation, event, variables that matter, caller
    if the document reads one). Entries hold their operation and event, so an id is never
    taken for another object's."""

    MAX = 512

    def __init__(self) -> None:
        self._entries: OrderedDict[Hashable, _Shared] = OrderedDict()
        self._by_data: dict[int, _Shared] = {}
        self._shapes: dict[int, _Shape] = {}

    def execute(self, executor: SharedEventExecutor, run: Callable[[], Any]) -> Any:
        operation, payload = executor.operation, executor.root_value
        if not isinstance(payload, SHARED_PAYLOADS):
            return run()
        key = self._key(executor)
        found = self._entries.get(key)
        if found is not None and found.operation is operation and found.payload is payload:
            self._entries.move_to_end(key)
            if found.result is not None:
                return found.result
            assert found.pending is not None
            return self._join(found.pending, run)
        out = run()
        if executor.is_awaitable(out):
            # Its own task: the subscriber that started it leaving does not cancel it for
            # the others; whoever started it gets its result whatever it holds.
            pending = asyncio.ensure_future(out)
            entry = _Shared(operation, payload, pending=pending)
            self._store(key, entry)
            pending.add_done_callback(lambda done: self._settle(key, entry, done))
            return asyncio.shield(pending)
        if not out.errors:
            self._store(key, _Shared(operation, payload, result=out))
        return out

    def encoded(self, data: object, encode: Callable[[object], str]) -> str | None:
        """The JSON of a shared result's data (encoded on first use), or None if not shared."""
        entry = self._by_data.get(id(data))
        if entry is None or entry.result is None or entry.result.data is not data:
            return None
        if entry.encoded is None:
            entry.encoded = encode(data)
        return entry.encoded

    def _key(self, executor: SharedEventExecutor) -> Hashable:
        operation = executor.operation
        shape = self._shapes.get(id(operation))
        if shape is None or shape.operation is not operation:
            fragments = executor.fragment_definitions.values()
            shape = self._shapes[id(operation)] = _shape(operation, fragments)
            if len(self._shapes) > self.MAX:
                self._shapes.pop(next(iter(self._shapes)))
        values = executor.variable_values.coerced
        variables = tuple(
            (name, json.dumps(values.get(name), sort_keys=True, default=str))
            for name in shape.variables
        )
        caller = getattr(executor.context_value, "token", None) if shape.per_caller else None
        return (id(operation), id(executor.root_value), variables, caller)

    def _store(self, key: Hashable, entry: _Shared) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget(old)
        self._entries[key] = entry
        if entry.result is not None:
            self._by_data[id(entry.result.data)] = entry
        while len(self._entries) > self.MAX:
            self._forget(self._entries.popitem(last=False)[1])

    def _forget(self, entry: _Shared) -> None:
        if entry.result is not None and self._by_data.get(id(entry.result.data)) is entry:
            del self._by_data[id(entry.result.data)]

    def _settle(self, key: Hashable, entry: _Shared, done: asyncio.Future[ExecutionResult]) -> None:
        """An execution finished: shared from now on, or forgotten if it did not succeed."""
        if self._entries.get(key) is not entry:
            return
        if done.cancelled() or done.exception() is not None or done.result().errors:
            del self._entries[key]
            return
        entry.result = done.result()
        self._by_data[id(entry.result.data)] = entry

    @staticmethod
    async def _join(pending: asyncio.Future[ExecutionResult], run: Callable[[], Any]) -> Any:
        try:
            result = await asyncio.shield(pending)
        except asyncio.CancelledError:
            if not pending.cancelled():
                raise  # this subscriber was cancelled, not the shared execution
            result = None
        except Exception:
            result = None
        if result is not None and not result.errors:
            return result
        out = run()  # errors are never shared: this subscriber executes for itself
        return await out if inspect.isawaitable(out) else out


RESULTS = SharedResults()


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor; a subscription's per-event execution goes through RESULTS."""

    per_event = False

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = cast("SharedEventExecutor", super().build_per_event_executor(payload))
        executor.per_event = True
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self.per_event:
            return super().execute_operation(serially)
        return RESULTS.execute(
            self, lambda: super(SharedEventExecutor, self).execute_operation(serially)
        )


# The frame types that carry one result: graphql-transport-ws `next`, graphql-ws `data`.
_RESULT_FRAMES = ("next", "data")


def encode_message(message: object, encode: Callable[[object], str | bytes]) -> str | bytes:
    """A websocket message as JSON: a result frame of a shared result reuses its encoding,
    framed with this operation's id; anything else goes to `encode`."""
    if type(message) is dict and message.get("type") in _RESULT_FRAMES:
        payload = message.get("payload")
        if type(payload) is dict and payload.keys() == {"data"}:
            data = RESULTS.encoded(payload["data"], lambda d: _text(encode(d)))
            if data is not None:
                return (
                    f'{{"type":"{message["type"]}","id":{json.dumps(message.get("id"))},'
                    f'"payload":{{"data":{data}}}}}'
                )
    return encode(message)


def _text(encoded: str | bytes) -> str:
    return encoded.decode() if isinstance(encoded, bytes) else encoded
