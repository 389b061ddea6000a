"""Start-up speed for the one-shot commands (agents call them hundreds of times a session).

Two measured costs are avoided here, both without changing behaviour:

- httpx imports its optional command-line client (`httpx._main`, which pulls in rich, click and
  pygments: about 45 ms) only to offer `httpx.main`; we never use it. Marking the module as
  missing makes httpx take its own documented fallback (`except ImportError`).
- typer 0.29 coerces every parameter through a pydantic TypeAdapter, which imports pydantic and
  builds a schema per parameter (about 100-130 ms) although our parameters are plain strings that
  click already parsed. For `str` and `bool` parameters we install the equivalent coercion (bytes
  are decoded, booleans read from the usual words); every other type keeps typer's own path.

If typer's internals change shape, `install()` leaves typer untouched (slower, still correct).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        from dataclasses import dataclass

        import typer.core as typer_core
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover - a typer without these internals
        return
    found = getattr(typer_core, "build_runtime_param", None)
    if found is None or not isinstance(RuntimeParam, type):  # pragma: no cover
        return
    original: Callable[[Any], Any] = found

    @dataclass(frozen=True)
    class PlainStr(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bytes):
                return value.decode(sys.getfilesystemencoding(), "surrogateescape")
            return str(value)

    @dataclass(frozen=True)
    class PlainBool(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            # Anything unusual: typer's own coercion (and its error message).
            return original(self._descriptor())._coerce_value(value, param, ctx)

        def _descriptor(self) -> Any:
            from typer._coercion import resolve_type_descriptor

            return resolve_type_descriptor(bool, self.parameter_info)

    def build_runtime_param(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        plain = (
            descriptor.file_annotation is None
            and getattr(info, "parser", None) is None
            and getattr(info, "click_type", None) is None
        )
        if plain and descriptor.annotation is str:
            return PlainStr(parameter_info=info, annotation=str)
        if plain and descriptor.annotation is bool:
            return PlainBool(parameter_info=info, annotation=bool)
        return original(descriptor)

    typer_core.build_runtime_param = build_runtime_param


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})
