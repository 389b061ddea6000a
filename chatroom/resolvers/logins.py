"""Device login (SPEC §5) and the caller's own sessions.

The CLI asks for a request and gets its id (a random secret only it knows) and a short user
code; a signed-in browser approves the code; the CLI, waiting on its id, collects the token.
The token is minted at collection, in the same transaction that marks the request collected,
so it is delivered exactly once and never stored in plaintext."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import AuthSession, CliLoginRequest, LoginStatus, User, utcnow
from chatroom.db.notify import login_payload, notify

__all__ = ["LoginStatus"]
from chatroom.resolvers import access, auth, validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import Conflict, NotFound

LOGIN_LIFETIME = timedelta(minutes=10)
# No vowels (no words), no look-alikes (0/O, 1/I/L).
CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ23456789"
USER_CODE_PATTERN = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$")


def new_user_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_code(code: str) -> str:
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == 8 else code.strip().upper()


async def _announce(tx: AsyncSession, request: CliLoginRequest) -> None:
    """Wake the CLI waiting on this request (delivered only if this transaction commits)."""
    connection = await tx.connection()
    await connection.execute(notify(login_payload(request.id)))


def _current_status(request: CliLoginRequest) -> LoginStatus:
    status = LoginStatus(request.status)
    if status in (LoginStatus.PENDING, LoginStatus.APPROVED) and request.expires_at <= utcnow():
        return LoginStatus.EXPIRED
    return status


async def request_cli_login(tx: AsyncSession, *, device_name: str | None) -> CliLoginRequest:
    name = validation.name(device_name, field="deviceName") if device_name else None
    request = CliLoginRequest(
        user_code=new_user_code(), device_name=name, expires_at=utcnow() + LOGIN_LIFETIME
    )
    tx.add(request)
    await tx.flush()
    return request


async def _by_code(tx: AsyncSession, user_code: str, *, lock: bool) -> CliLoginRequest:
    code = normalize_code(user_code)
    found = None
    # Only a well-formed code can exist; anything else (a NUL byte, a stray surrogate) must
    # not reach the driver, which would fail with INTERNAL instead of NOT_FOUND.
    if USER_CODE_PATTERN.match(code):
        query = (
            select(CliLoginRequest)
            .where(CliLoginRequest.user_code == code)
            .order_by(col(CliLoginRequest.created_at).desc())
            .limit(1)
        )
        found = (await tx.exec(query.with_for_update() if lock else query)).first()
    if found is None:
        raise NotFound(
            f"No login request has code {user_code!r}. Check the code the CLI printed, or run "
            "`chatroom auth login` again for a new one."
        )
    return found


async def cli_login_request(tx: AsyncSession, caller: Caller, *, user_code: str) -> CliLoginRequest:
    """What the approval page shows before the person decides."""
    access.require_owner(caller)
    request = await _by_code(tx, user_code, lock=False)
    request.status = _current_status(request).value
    return request


async def decide_cli_login(
    tx: AsyncSession, caller: Caller, *, user_code: str, approve: bool
) -> CliLoginRequest:
    access.require_owner(caller)
    request = await _by_code(tx, user_code, lock=True)
    status = _current_status(request)
    if status == LoginStatus.EXPIRED:
        raise Conflict("This login request expired. Run `chatroom auth login` again.")
    if status != LoginStatus.PENDING:
        raise Conflict(f"This login request was already {status.value}.")
    request.status = (LoginStatus.APPROVED if approve else LoginStatus.DENIED).value
    request.approved_by = caller.user_id if approve else None
    tx.add(request)
    await tx.flush()
    await _announce(tx, request)
    return request


@dataclass
class LoginState:
    status: LoginStatus
    expires_at: datetime
    token: str | None = None
    user: User | None = None


async def collect_cli_login(tx: AsyncSession, *, request_id: str) -> LoginState:
    """The CLI's view of its request. The first look after approval mints and returns the
    token; every later look says COLLECTED and carries no token."""
    rid = validation.entity_id(request_id, kind="login request")
    request = (
        await tx.exec(select(CliLoginRequest).where(CliLoginRequest.id == rid).with_for_update())
    ).first()
    if request is None:
        raise NotFound("No such login request. Run `chatroom auth login` again.")
    status = _current_status(request)
    state = LoginState(status=status, expires_at=request.expires_at)
    if status != LoginStatus.APPROVED or request.approved_by is None:
        return state
    token, session = await auth.mint_session(
        tx, user_id=request.approved_by, device_name=request.device_name or "chatroom CLI"
    )
    request.status = LoginStatus.COLLECTED.value
    request.session_id = session.id
    tx.add(request)
    await tx.flush()
    state.token = token
    state.user = await auth.get_user(tx, request.approved_by)
    return state


def login_id(request_id: str) -> uuid.UUID:
    return validation.entity_id(request_id, kind="login request")


async def list_sessions(tx: AsyncSession, caller: Caller) -> tuple[list[AuthSession], uuid.UUID]:
    """My sessions, newest first, and which one is making this call."""
    access.require_owner(caller)
    rows = await tx.exec(
        select(AuthSession)
        .where(AuthSession.user_id == caller.user_id)
        .order_by(col(AuthSession.created_at).desc())
    )
    return list(rows.all()), caller.session_id


async def revoke_session(
    tx: AsyncSession, caller: Caller, *, session_id: str | None
) -> AuthSession:
    """Revoke one of my sessions (default: the one making this call, i.e. log out)."""
    target = (
        caller.session_id
        if session_id is None
        else validation.entity_id(session_id, kind="session")
    )
    if target != caller.session_id:
        access.require_owner(caller)
    session = (
        await tx.exec(
            select(AuthSession)
            .where(AuthSession.id == target, AuthSession.user_id == caller.user_id)
            .with_for_update()
        )
    ).first()
    if session is None:
        raise NotFound("No such session among yours. List them with the sessions query.")
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        tx.add(session)
        await tx.flush()
        # This process stops serving it from its cache now; every process (this one too)
        # hears the sessions_changed trigger's notification at commit, forgets it, and wakes
        # the session's open subscriptions, which re-check and end.
        auth.forget_session(session.id)
    return session


@dataclass
class AgentToken:
    token: str
    session: AuthSession


async def create_agent_token(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> AgentToken:
    """A token that acts only as `role` in this room: it cannot speak as the user, see other
    rooms, manage the room or mint tokens. Shown once; revoke it with revokeSession."""
    access.require_owner(caller)
    # Running agents is a member's right (SPEC §12): a viewer cannot mint a token.
    room = await access.load_room(tx, caller, chatroom_id, lock=False, steer=True)
    who = access.team_role(room, role)
    token, session = await auth.mint_session(
        tx,
        user_id=caller.user_id,
        device_name=f"agent {who}",
        scope_chatroom_id=room.id,
        scope_role=who,
    )
    return AgentToken(token, session)
