"""Accounts: username and password (Argon2id), signup modes, sign-in throttling, guest upgrade.

A password is only ever passed to the hasher: it is never stored, logged, echoed in an error
or returned. Unknown usernames and wrong passwords answer with the same error after the same
hashing work (a dummy hash is verified), so a caller cannot tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import uuid
from datetime import timedelta
from enum import StrEnum

from pwdlib import PasswordHash
from sqlalchemy import func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Account, SignupInvite, User, utcnow
from chatroom.resolvers import validation
from chatroom.resolvers.auth import Caller, get_user, hash_token, mint_session
from chatroom.resolvers.errors import BadInput, Forbidden, RateLimited, Unauthenticated

HASHER = PasswordHash.recommended()  # Argon2id with pwdlib's recommended parameters
# Verified when the username is unknown, so that answer costs what a wrong password costs.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # bounds the hashing work one request can ask for

# Failed sign-ins allowed per account and per address within the window.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGNUP_INVITE_LIFETIME = timedelta(days=7)
INVITE_PREFIX = "chs_"

_BAD_CREDENTIALS = "Wrong username or password."


class SignupMode(StrEnum):
    OPEN = "open"
    INVITE = "invite"
    CLOSED = "closed"


def signup_mode() -> SignupMode:
    """CHATROOM_SIGNUP (default open). An unknown value is refused at signup rather than
    silently read as open."""
    raw = os.environ.get("CHATROOM_SIGNUP", "open").strip().lower() or "open"
    try:
        return SignupMode(raw)
    except ValueError:
        raise Forbidden(
            f"Signup is misconfigured on this server (CHATROOM_SIGNUP={raw!r}; expected "
            "open, invite or closed). Ask its operator."
        ) from None


def _username(value: str) -> str:
    value = (value or "").strip()
    if not USERNAME.fullmatch(value):
        raise BadInput(
            "A username is 3 to 32 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit.",
            field="username",
        )
    return value


def _password(value: str) -> str:
    if not isinstance(value, str) or not (MIN_PASSWORD <= len(value) <= MAX_PASSWORD):
        # Never echo the password: only its rule.
        raise BadInput(
            f"A password is {MIN_PASSWORD} to {MAX_PASSWORD} characters.", field="password"
        )
    return validation.storable(value, field="password")  # its messages never echo the value


async def _hash(password: str) -> str:
    """Argon2id takes tens of milliseconds of CPU: off the event loop, so one sign-up does
    not stall every subscription of the process."""
    return await asyncio.to_thread(HASHER.hash, password)


async def _verify(password: str, password_hash: str) -> bool:
    return await asyncio.to_thread(HASHER.verify, password, password_hash)


async def _account_by_username(tx: AsyncSession, username: str) -> Account | None:
    return (
        await tx.exec(select(Account).where(func.lower(Account.username) == username.lower()))
    ).first()


async def _username_free(tx: AsyncSession, username: str) -> None:
    if await _account_by_username(tx, username) is not None:
        raise BadInput("That username is taken; choose another.", field="username")


async def _first_account(tx: AsyncSession) -> bool:
    """Whether no account exists yet, under a lock so two first signups cannot both be admin."""
    await tx.exec(text("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE"))  # type: ignore[call-overload]
    return (await tx.exec(select(Account.user_id).limit(1))).first() is None


def code_hash(code: str | None) -> str | None:
    """The stored hash an invite code (signup or room) is looked up by; None for a code no
    invite can have (empty, or text that is not valid Unicode), which answers as unknown."""
    code = (code or "").strip()
    try:
        return hash_token(code) if code else None
    except UnicodeEncodeError:
        return None


async def _use_signup_invite(tx: AsyncSession, code: str | None, user_id: uuid.UUID) -> None:
    invite = None
    if (hashed := code_hash(code)) is not None:
        invite = (
            await tx.exec(
                select(SignupInvite).where(SignupInvite.code_hash == hashed).with_for_update()
            )
        ).first()
    if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
        raise Forbidden(
            "Signup on this server needs an invite code that is unused and unexpired; ask "
            "its admin for one (createSignupInvite).",
            field="inviteCode",
        )
    invite.used_at = utcnow()
    invite.used_by = user_id
    tx.add(invite)


async def sign_up(
    tx: AsyncSession, *, username: str, password: str, invite_code: str | None
) -> tuple[str, User]:
    username = _username(username)
    password = _password(password)
    first = await _first_account(tx)
    mode = signup_mode()
    # The first account can always be made: it is the admin, who mints invites.
    if not first and mode is SignupMode.CLOSED:
        raise Forbidden("Signup is closed on this server; ask its admin for an account.")
    await _username_free(tx, username)
    user = User(display_name=validation.name(username, field="username"))
    tx.add(user)
    await tx.flush()
    if not first and mode is SignupMode.INVITE:
        await _use_signup_invite(tx, invite_code, user.id)
    tx.add(
        Account(
            user_id=user.id, username=username, password_hash=await _hash(password), is_admin=first
        )
    )
    await tx.flush()
    token, _ = await mint_session(tx, user_id=user.id)
    return token, user


async def upgrade_guest(tx: AsyncSession, caller: Caller, *, username: str, password: str) -> User:
    """The guest behind the caller's session becomes an account: same user, same rooms."""
    if caller.is_agent:
        raise Forbidden("An agent token cannot create an account; use your own session.")
    username = _username(username)
    password = _password(password)
    if await tx.get(Account, caller.user_id) is not None:
        raise BadInput("You already have an account; sign in with it.", field="username")
    first = await _first_account(tx)
    if not first and signup_mode() is SignupMode.CLOSED:
        raise Forbidden("Signup is closed on this server; ask its admin for an account.")
    await _username_free(tx, username)
    user = await get_user(tx, caller.user_id)
    tx.add(
        Account(
            user_id=user.id, username=username, password_hash=await _hash(password), is_admin=first
        )
    )
    await tx.flush()
    return user


async def _failures(tx: AsyncSession, key: str) -> int:
    row = (
        await tx.exec(  # type: ignore[call-overload]
            text(
                "SELECT failures, window_started_at FROM sign_in_throttles WHERE key = :k"
            ).bindparams(k=key)
        )
    ).first()
    if row is None or row[1] <= utcnow() - SIGN_IN_WINDOW:
        return 0
    return int(row[0])


async def record_failure(tx: AsyncSession, keys: list[str]) -> None:
    """Counted in its own committed transaction by the caller (a failed sign-in rolls back)."""
    for key in keys:
        await tx.exec(  # type: ignore[call-overload]
            text(
                "INSERT INTO sign_in_throttles (key, failures, window_started_at) "
                "VALUES (:k, 1, now()) ON CONFLICT (key) DO UPDATE SET "
                "failures = CASE WHEN sign_in_throttles.window_started_at <= :cut THEN 1 "
                "ELSE sign_in_throttles.failures + 1 END, "
                "window_started_at = CASE WHEN sign_in_throttles.window_started_at <= :cut "
                "THEN now() ELSE sign_in_throttles.window_started_at END"
            ).bindparams(k=key, cut=utcnow() - SIGN_IN_WINDOW)
        )


def throttle_keys(username: str, address: str) -> list[str]:
    return [f"account:{(username or '').strip().lower()[:64]}", f"address:{address[:120]}"]


class BadCredentials(Unauthenticated):
    """Raised after the attempt is counted; the same text whichever part was wrong."""


async def sign_in(
    tx: AsyncSession, *, username: str, password: str, address: str
) -> tuple[str, User]:
    # A username no account can have, or a password no account can have, is bad input: saying
    # so reveals nothing about which accounts exist, and costs no hashing or counting.
    username = _username(username)
    password = _password(password)
    keys = throttle_keys(username, address)
    for key in keys:
        if await _failures(tx, key) >= SIGN_IN_FAILURES:
            raise RateLimited(
                "Too many failed sign-ins for this account or from this address; wait "
                f"{int(SIGN_IN_WINDOW.total_seconds() // 60)} minutes and try again.",
                retryAfterSeconds=int(SIGN_IN_WINDOW.total_seconds()),
            )
    account = await _account_by_username(tx, username)
    # Verify against a dummy hash for an unknown username: the same work, the same answer.
    ok = await _verify(password, account.password_hash if account else _DUMMY_HASH)
    if account is None or not ok:
        raise BadCredentials(_BAD_CREDENTIALS)
    user = await get_user(tx, account.user_id)
    token, _ = await mint_session(tx, user_id=user.id)
    return token, user


async def is_admin(tx: AsyncSession, user_id: uuid.UUID) -> bool:
    account = await tx.get(Account, user_id)
    return account is not None and account.is_admin


async def create_signup_invite(tx: AsyncSession, caller: Caller) -> tuple[str, SignupInvite]:
    if caller.is_agent or not await is_admin(tx, caller.user_id):
        raise Forbidden("Only the server's admin (its first account) can mint signup invites.")
    code = INVITE_PREFIX + secrets.token_urlsafe(24)
    invite = SignupInvite(
        code_hash=hash_token(code),
        created_by=caller.user_id,
        expires_at=utcnow() + SIGNUP_INVITE_LIFETIME,
    )
    tx.add(invite)
    await tx.flush()
    return code, invite
