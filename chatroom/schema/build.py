"""The Strawberry schema. `python -m chatroom.schema.build` prints the SDL (schema.graphql)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from chatroom.config import settings
from chatroom.schema.errors import CodedErrors
from chatroom.schema.mutation import Mutation
from chatroom.schema.query import Query
from chatroom.schema.subscription import Subscription


class ChatroomSchema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Plain execution (HTTP) never runs subscriptions: they need a websocket. The HTTP
        view answers 400 "subscriptions are not allowed" instead of failing inside."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        allowed.discard(OperationType.SUBSCRIPTION)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed,
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """CodedErrors already logged what is unexpected; refusals are not server errors."""


schema = ChatroomSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=settings().max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings().max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings().max_query_tokens),
        CodedErrors,
    ],
)


def sdl() -> str:
    return schema.as_str() + "\n"


if __name__ == "__main__":
    print(sdl(), end="")
