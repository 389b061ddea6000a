"""GraphQL for accounts (SPEC §12): signUp, signIn, upgradeGuest, createSignupInvite."""

from __future__ import annotations

from datetime import datetime

import strawberry

from chatroom.resolvers import accounts
from chatroom.schema import types as t
from chatroom.schema.context import AppInfo
from chatroom.schema.session import in_transaction


@strawberry.input
class SignUpInput:
    username: str
    password: str
    invite_code: str | None = strawberry.field(
        default=None, description="Needed when the server's signup mode is invite."
    )


@strawberry.input
class SignInInput:
    username: str
    password: str


@strawberry.input
class UpgradeGuestInput:
    username: str
    password: str


@strawberry.type
class SignupInvite:
    code: str = strawberry.field(description="Shown once: the server keeps only a hash.")
    expires_at: datetime


def _address(info: AppInfo) -> str:
    client = (getattr(info.context.request, "scope", None) or {}).get("client") or ("unknown", 0)
    return str(client[0])


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="A new account and its bearer token.")
    async def sign_up(self, info: AppInfo, input: SignUpInput) -> t.GuestSession:
        info.context.check_rate()
        async with info.context.db.transaction() as tx:
            token, user = await accounts.sign_up(
                tx, username=input.username, password=input.password, invite_code=input.invite_code
            )
        return t.GuestSession(token=token, user=t.User.of(user))

    @strawberry.mutation(description="A new bearer token for an account.")
    async def sign_in(self, info: AppInfo, input: SignInInput) -> t.GuestSession:
        info.context.check_rate()
        address = _address(info)
        try:
            async with info.context.db.transaction() as tx:
                token, user = await accounts.sign_in(
                    tx, username=input.username, password=input.password, address=address
                )
        except accounts.BadCredentials:
            # The failed attempt's transaction rolled back: count it in one that commits.
            async with info.context.db.transaction() as tx:
                await accounts.record_failure(tx, accounts.throttle_keys(input.username, address))
            raise
        return t.GuestSession(token=token, user=t.User.of(user))

    @strawberry.mutation(
        description="Your guest user becomes an account (same user, rooms and sessions)."
    )
    async def upgrade_guest(self, info: AppInfo, input: UpgradeGuestInput) -> t.User:
        user = await in_transaction(
            info,
            lambda tx, c: accounts.upgrade_guest(
                tx, c, username=input.username, password=input.password
            ),
        )
        return t.User.of(user)

    @strawberry.mutation(description="A single-use signup code (admin only).")
    async def create_signup_invite(self, info: AppInfo) -> SignupInvite:
        code, invite = await in_transaction(
            info, lambda tx, c: accounts.create_signup_invite(tx, c)
        )
        return SignupInvite(code=code, expires_at=invite.expires_at)
