"""The Strawberry schema. `python -m chatroom.schema.build` prints the SDL (schema.graphql)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from chatroom.config import settings
from chatroom.schema.errors import CodedErrors
from chatroom.schema.mutation import Mutation
from chatroom.schema.query import Query
from chatroom.schema.subscription import Subscription


class ChatroomSchema(strawberry.Schema):
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
