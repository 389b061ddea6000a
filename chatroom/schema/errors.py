"""One extension for every error a client sees: domain errors carry `extensions.code` from the
closed list; GraphQL validation errors are BAD_USER_INPUT; anything else is logged with the
request id and masked as INTERNAL, so no driver text, SQL or stack trace leaves the server."""

from __future__ import annotations

import logging
import re

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from chatroom.db.errors import ConstraintViolation
from chatroom.resolvers.errors import AppError, ErrorCode

log = logging.getLogger("chatroom.errors")

CONFLICT_MESSAGE = (
    "Another change to this room happened at the same moment and won. Read the room again "
    "and retry if it still makes sense."
)

# graphql-core quotes a whole rejected input object back ("... found: {'username': 'ada',
# 'password': '...'}"): a password or invite code is never echoed, so their values go.
_SECRET_VALUE = re.compile(
    r"""(\b(?:password|inviteCode)['"]?\s*:\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)


def without_secrets(message: str) -> str:
    return _SECRET_VALUE.sub(r"\1<redacted>", message)


class CodedErrors(MaskErrors):
    def _process_result(self, result: object) -> None:
        # MaskErrors asks `isinstance(result, <a runtime-checkable Protocol>)`, which costs
        # more than the rest of the hook (typing walks the protocol's members each time): per
        # streamed result that was an eighth of a 1,000-subscriber fan-out. Same question,
        # asked directly.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._coded(error) for error in errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, AppError):
            return self._with(error, original.message, original.code, original.details)
        if isinstance(original, ConstraintViolation):
            return self._with(error, CONFLICT_MESSAGE, ErrorCode.CONFLICT, {})

        if original is None or isinstance(original, GraphQLError):
            # Parse and validation errors (bad enum, unknown field, wrong type): the message
            # is graphql-core's own and names the offending part of the document.
            code = (error.extensions or {}).get("code") or ErrorCode.BAD_USER_INPUT
            return self._with(error, without_secrets(error.message), code, {})
        request_id = self._request_id()
        log.error(
            "unexpected error in %s (request %s)",
            ".".join(str(p) for p in error.path or []) or "operation",
            request_id,
            exc_info=original,
        )
        return self._with(
            error,
            f"Unexpected error (request {request_id}). It was logged; retry, or report the id.",
            ErrorCode.INTERNAL,
            {"requestId": request_id},
        )

    def _request_id(self) -> str:
        context = getattr(self.execution_context, "context", None)
        return str(getattr(context, "request_id", "unknown"))

    @staticmethod
    def _with(
        error: GraphQLError, message: str, code: str, details: dict[str, object]
    ) -> GraphQLError:
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={**details, "code": str(code)},
        )
