"""Bearer tokens: minted at random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import AuthSession, User, utcnow
from chatroom.db.session_cache import SESSIONS
from chatroom.resolvers import validation
from chatroom.resolvers.errors import Unauthenticated

TOKEN_PREFIX = "chr_"
# Sliding expiry: a session lives this long after its last use...
SESSION_LIFETIME = timedelta(days=30)
# ...recorded at most this often, so reads do not turn into writes on every request.
RENEW_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime
    # An agent token acts only in this room, only as this role.
    scope_chatroom_id: uuid.UUID | None = None
    scope_role: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.scope_chatroom_id is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits


async def create_guest_session(tx: AsyncSession, *, display_name: str | None) -> tuple[str, User]:
    user = User(display_name=validation.name(display_name or "Guest", field="displayName"))
    tx.add(user)
    await tx.flush()
    token, _ = await mint_session(tx, user_id=user.id)
    return token, user


async def mint_session(
    tx: AsyncSession,
    *,
    user_id: uuid.UUID,
    device_name: str | None = None,
    scope_chatroom_id: uuid.UUID | None = None,
    scope_role: str | None = None,
) -> tuple[str, AuthSession]:
    """A new session and its token (the only time the token exists outside the client)."""
    token = new_token()
    session = AuthSession(
        user_id=user_id,
        token_hash=hash_token(token),
        device_name=device_name,
        scope_chatroom_id=scope_chatroom_id,
        scope_role=scope_role,
        expires_at=utcnow() + SESSION_LIFETIME,
    )
    tx.add(session)
    await tx.flush()
    return token, session


@dataclass(frozen=True)
class _Cached:
    caller: Caller
    last_used_at: datetime


async def authenticate(tx: AsyncSession, token: str | None) -> Caller:
    """The caller behind a bearer token, or UNAUTHENTICATED with the way to get one. Served
    from the process's session cache when it can be (chatroom/db/session_cache.py says when);
    a session due for renewal or expiry always goes to the database."""
    if not token:
        raise Unauthenticated(
            "Sign in first: send 'Authorization: Bearer <token>' (create one with the "
            "createGuestSession mutation or `chatroom auth login`)."
        )
    token_hash = hash_token(token)
    cached = SESSIONS.get(token_hash)
    if isinstance(cached, _Cached):
        now = utcnow()
        if cached.caller.expires_at > now and now - cached.last_used_at < RENEW_AFTER:
            return cached.caller
    generation = SESSIONS.generation
    session = (
        await tx.exec(select(AuthSession).where(AuthSession.token_hash == token_hash))
    ).first()
    if session is None or session.revoked_at is not None or session.expires_at <= utcnow():
        raise Unauthenticated(
            "This token is not valid (unknown, revoked or expired). Sign in again with "
            "`chatroom auth login` or the createGuestSession mutation."
        )
    now = utcnow()
    if now - session.last_used_at >= RENEW_AFTER:
        session.last_used_at = now
        session.expires_at = now + SESSION_LIFETIME
        tx.add(session)
        await tx.flush()
    caller = Caller(
        user_id=session.user_id,
        session_id=session.id,
        expires_at=session.expires_at,
        scope_chatroom_id=session.scope_chatroom_id,
        scope_role=session.scope_role,
    )
    SESSIONS.put(token_hash, session.id, _Cached(caller, session.last_used_at), generation)
    return caller


def forget_session(session_id: uuid.UUID) -> None:
    """A session this process revokes stops being served from its cache at once (the other
    processes hear the notification)."""
    SESSIONS.forget(session_id)


async def get_user(tx: AsyncSession, user_id: uuid.UUID) -> User:
    user = await tx.get(User, user_id)
    if user is None:  # the session row cascades with its user, so this means a race with deletion
        raise Unauthenticated("Your account no longer exists. Sign in again.")
    return user
