"""Row objects built from values that are already the table's own: read from it, or made by our
code to be written to it.

`Task(**values)` validates every field with pydantic and costs ~120 us; even pydantic's
`model_construct` costs ~40 us, most of it in filling the defaults (for each one it asks
`inspect.signature` whether the factory wants the validated data). `build` does what
`model_construct` does for our tables with a plan worked out once per model (which fields have
a default, which a factory), then adds the instrumentation SQLAlchemy gives a row it loads:
~5 us. The result behaves like a loaded row (attribute helpers such as `set_committed_value`
work on it) but is in no session; `attached` puts a row read by a driver statement into the
session as the ORM would have loaded it (a copy the session already holds wins, as with an ORM
query), so later ORM changes to it are flushed as usual."""

from __future__ import annotations

import copy
import enum
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic_core import PydanticUndefined
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

M = TypeVar("M", bound=SQLModel)

# Defaults that may be shared between rows as they are (pydantic copies any other one).
_IMMUTABLE = (type(None), bool, int, float, str, bytes, enum.Enum)


_REQUIRED = object()  # a field with no default: left out when no value is given, as pydantic does


@functools.cache
def _plan(model: type[SQLModel]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...] | None:
    """What `model_construct` does for `model`, worked out once: its fields in order, each with
    a shared default, or a factory, or _REQUIRED. None where this does not cover the model
    (aliases, extra fields, a post-init hook, a factory that takes the validated data):
    `model_construct` itself then builds the row."""
    if model.model_config.get("extra") == "allow" or model.__pydantic_post_init__:
        return None
    plan: list[tuple[str, Any, Callable[[], Any] | None]] = []
    for name, field in model.__pydantic_fields__.items():
        if field.alias is not None or field.validation_alias is not None:
            return None
        if field.default_factory is not None:
            if field.default_factory_takes_validated_data:
                return None
            plan.append((name, None, field.default_factory))  # type: ignore[arg-type]
        elif field.default is PydanticUndefined:
            plan.append((name, _REQUIRED, None))
        elif isinstance(field.default, _IMMUTABLE):
            plan.append((name, field.default, None))
        else:  # pydantic gives each row its own copy of a mutable default
            plan.append((name, None, functools.partial(copy.deepcopy, field.default)))
    return tuple(plan)


def build(model: type[M], values: Mapping[str, Any]) -> M:
    plan = _plan(model)
    if plan is None:
        row = model.model_construct(**values)
    else:
        row = model.__new__(model)  # SQLModel's __new__ sets pydantic's private slots
        fields: dict[str, Any] = {}
        given: set[str] = set()
        for name, default, factory in plan:
            if name in values:
                fields[name] = values[name]
                given.add(name)
            elif factory is not None:
                fields[name] = factory()
            elif default is not _REQUIRED:
                fields[name] = default
        object.__setattr__(row, "__dict__", fields)
        object.__setattr__(row, "__pydantic_fields_set__", given)
    model._sa_class_manager.setup_instance(row)  # type: ignore[attr-defined]
    return row


def build_from(model: type[M], record: Any, columns: tuple[str, ...], start: int = 0) -> M | None:
    """The row held by `record[start:start + len(columns)]` (a RETURNING row's slice), or None
    when it is all NULL (a LEFT JOIN that found nothing)."""
    if record[start] is None:
        return None
    return build(model, dict(zip(columns, record[start : start + len(columns)], strict=True)))


def attached(tx: AsyncSession, model: type[M], record: Any, columns: tuple[str, ...]) -> M:
    session = tx.sync_session
    loaded = session.identity_map.get((model, (record[0],), None))
    if loaded is not None:
        return loaded
    row = build(model, dict(zip(columns, record, strict=True)))
    make_transient_to_detached(row)  # committed values, an identity: what a load gives
    session.add(row)
    return row
