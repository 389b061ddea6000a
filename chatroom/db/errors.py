"""Database refusals, translated from driver exceptions so no driver text travels further."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


class ConstraintViolation(Exception):
    """A constraint refused a write (most often: lost a race the code could not see)."""

    def __init__(self, constraint: str | None) -> None:
        super().__init__(f"constraint violated: {constraint or 'unknown'}")
        self.constraint = constraint

    @classmethod
    def from_integrity_error(cls, exc: IntegrityError) -> ConstraintViolation:
        orig = getattr(exc, "orig", None)
        cause = getattr(orig, "__cause__", None)
        name = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
        return cls(name)
