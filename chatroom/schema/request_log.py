"""Log format (CHATROOM_LOG_FORMAT=text|json) and one log line per GraphQL operation in json.

In json every line is one JSON object: time, level, logger, message, and where known the
request id, operation name, duration and user id. Tokens and passwords never reach a log record
in the first place (they are read from headers and inputs, never formatted into messages), so
the formatter has nothing to redact; tests/http/test_request_log.py and the suite-wide check in
tests/conftest.py hold that.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

log = logging.getLogger("chatroom.requests")

# Keys a record may carry (via logging's `extra=`) that the JSON line shows as fields.
FIELDS = ("request_id", "operation", "operation_type", "duration_ms", "user_id", "error_codes")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def json_logs() -> bool:
    return os.environ.get("CHATROOM_LOG_FORMAT", "text").strip().lower() == "json"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure() -> None:
    """Called once as the app is built. In json mode our loggers and uvicorn's write JSON lines
    to stderr; in text mode nothing changes (uvicorn's own format, our warnings and errors)."""
    if not json_logs():
        return
    formatter = JsonFormatter()
    ours = logging.getLogger("chatroom")
    if not any(isinstance(h.formatter, JsonFormatter) for h in ours.handlers):
        stream = logging.StreamHandler()
        stream.setFormatter(formatter)
        ours.addHandler(stream)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    for name in UVICORN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


def operation_type(context: ExecutionContext) -> str | None:
    """ "query", "mutation" or "subscription"; None for a document that did not parse (Strawberry
    raises when asked for the type of a document it has not got)."""
    try:
        kind = context.operation_type
    except Exception:  # no document, or no such operation in it
        return None
    return kind.value if kind else None


class OperationLog(SchemaExtension):
    """One INFO line per operation in json mode: name, type, duration, request id, user id."""

    def on_operation(self) -> Iterator[None]:
        if not json_logs():
            yield
            return
        started = time.perf_counter()
        yield
        context = self.execution_context
        request = context.context
        errors = getattr(context.result, "errors", None) or []
        codes = sorted({str((e.extensions or {}).get("code", "INTERNAL")) for e in errors})
        log.info(
            "operation",
            extra={
                "request_id": getattr(request, "request_id", None),
                "operation": context.operation_name or "anonymous",
                "operation_type": operation_type(context),
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "user_id": getattr(request, "user_id", None),
                "error_codes": codes or None,
            },
        )
