"""The Strawberry schema. `python -m chatroom.schema.build` prints the SDL (schema.graphql)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, parse
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from chatroom.config import settings
from chatroom.schema import trusted_documents
from chatroom.schema.errors import CodedErrors
from chatroom.schema.metrics import OperationMetrics
from chatroom.schema.mutation import Mutation
from chatroom.schema.query import Query
from chatroom.schema.request_log import OperationLog
from chatroom.schema.shared_results import SharedEventExecutor
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


_parse_cached = functools.lru_cache(maxsize=128)(parse)


class CachedParse(SchemaExtension):
    """Parse each document text once (bounded LRU). Unlike Strawberry's ParserCache, a
    document that does not parse is left to Strawberry's own parse, which reports it as a
    normal GraphQL error (BAD_USER_INPUT), the token limit included."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # A document that does not parse is not cached: it is parsed again and reported.
        if context.query is not None and context.graphql_document is None:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _parse_cached(context.query, **context.parse_options)
        yield


@functools.cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The depth and alias rules, built once: ValidationCache keys on the rule classes, and
    the limiter extensions build new classes each time they are constructed."""
    depth = QueryDepthLimiter(max_depth=max_depth).validation_rules
    aliases = MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules
    return (*depth, *aliases)


def _limits() -> AddValidationRules:
    s = settings()
    rules = (*_limit_rules(s.max_query_depth, s.max_aliases), *trusted_documents.validation_rules())
    return AddValidationRules(list(rules))


# Parsing and validating a document cost about a quarter of a mutation's server CPU; both are
# cached per document text (bounded LRU caches: 128 documents each, by default). The token
# limit is a parse option, so it is part of the parse cache's key and still applies.
schema = ChatroomSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # A subscription event's result is executed and encoded once for every subscriber with
    # the same document (chatroom/schema/shared_results.py); other executions are unchanged.
    execution_context_class=SharedEventExecutor,
    extensions=[
        OperationMetrics,
        OperationLog,
        lambda: MaxTokensLimiter(max_token_count=settings().max_query_tokens),
        CachedParse,
        _limits,
        ValidationCache,
        CodedErrors,
    ],
)


def sdl() -> str:
    return schema.as_str() + "\n"


if __name__ == "__main__":
    print(sdl(), end="")
