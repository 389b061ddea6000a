"""The closed list of error codes clients switch on, and the exceptions that carry them.

Every message says what to do next. Nothing here ever holds driver text."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    HANDOFF_NOT_ALLOWED = "HANDOFF_NOT_ALLOWED"
    NOT_TASK_HOLDER = "NOT_TASK_HOLDER"
    TASK_NOT_CLAIMABLE = "TASK_NOT_CLAIMABLE"
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"


class AppError(Exception):
    """A refusal the client can act on. `details` become extra `extensions` keys."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthenticated(AppError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class BadInput(AppError):
    code = ErrorCode.BAD_USER_INPUT


class HandoffNotAllowed(AppError):
    code = ErrorCode.HANDOFF_NOT_ALLOWED


class NotTaskHolder(AppError):
    code = ErrorCode.NOT_TASK_HOLDER


class TaskNotClaimable(AppError):
    code = ErrorCode.TASK_NOT_CLAIMABLE


class Conflict(AppError):
    code = ErrorCode.CONFLICT


class IdempotencyKeyReused(AppError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED
