"""Who is calling: a bearer API token, or a session cookie (signed, HttpOnly, SameSite=Lax; Secure behind
TLS) whose writes must carry the session's CSRF token in `X-CSRF-Token`. Roles: viewer < operator < admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from ttsync.app import accounts
from ttsync.server.problems import Problem
from ttsync.store import schema
from ttsync.store.accounts import Role, UserRecord, get_or_create_setting, touch_token
from ttsync.store.db import Store
from ttsync.store.rows import as_utc, utc_now

SESSION_COOKIE = "ttsync_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the user, the role in force (a token's scope), and how they came in."""

    user: UserRecord
    role: Role
    via: str  # "session" or "token"

    @property
    def name(self) -> str:
        """The user name (what the audit log records)."""
        return self.user.name


def cookie_key(store: Store) -> bytes:
    """The key that signs session cookies, created once per store (so every server of a store agrees)."""
    return get_or_create_setting(store, "cookie_key", lambda: secrets.token_hex(32)).encode()


def sign(key: bytes, session_id: str) -> str:
    """`ID.MAC` for the cookie."""
    mac = hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()
    return f"{session_id}.{mac}"


def unsign(key: bytes, value: str) -> str | None:
    """The session id of a cookie whose signature holds, else None."""
    session_id, _, mac = value.rpartition(".")
    if not session_id:
        return None
    good = hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()
    return session_id if hmac.compare_digest(good, mac) else None


def store_of(request: Request) -> Store:
    """The server's store."""
    store: Store = request.app.state.store
    return store


_TOKENS, _USERS = schema.api_tokens, schema.users
_TOKEN_USER = (
    sa.select(_TOKENS.c.id, _TOKENS.c.role, _TOKENS.c.last_used_at, _TOKENS.c.revoked_at, *_USERS.c)
    .join_from(_TOKENS, _USERS, _TOKENS.c.user_name == _USERS.c.name)
    .where(_TOKENS.c.token_hash == sa.bindparam("token_hash"))
)
_USER_COLUMNS = tuple(str(c.name) for c in _USERS.c)


def token_user(store: Store, token: str) -> tuple[UserRecord, Role]:
    """`accounts.token_user` (the same rules and messages) in one read of the token joined with its user, as
    every bearer request needs it: the user and the token's scope; `AccessError` when the token is unknown or
    revoked or its user disabled."""
    with store.read() as conn:
        row = conn.execute(_TOKEN_USER, {"token_hash": accounts.sha256(token)}).first()
    if row is None or row[3] is not None:
        raise accounts.AccessError("unknown or revoked API token")
    token_id, scope, last_used_at = row[0], cast(Role, row[1]), as_utc(row[2])
    values = zip(_USER_COLUMNS, row[4:], strict=True)
    user = UserRecord.model_validate({k: as_utc(v) if isinstance(v, datetime) else v for k, v in values})
    if user.disabled:
        raise accounts.AccessError("this token's user is disabled")
    if last_used_at is None or utc_now() - last_used_at > timedelta(seconds=60):
        touch_token(store, token_id)  # minute resolution spares every API call a write, as in `accounts`
    return user, scope


def principal(request: Request) -> Principal:
    """Authenticate the request (dependency); 401 problem when it is not."""
    store = store_of(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401, "Not authenticated", "use `Authorization: Bearer TOKEN`", resolution="not_authenticated"
            )
        try:
            # Read from the store on every request (no cache): a revoked token, a disabled user or a lowered
            # role takes effect at once, whichever process or CLI changed it.
            user, scope = token_user(store, token.strip())
        except accounts.AccessError as exc:
            raise Problem(401, "Not authenticated", str(exc), resolution="not_authenticated") from None
        role = scope if accounts.rank(scope) <= accounts.rank(user.role) else user.role
        return Principal(user, role, "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Problem(
            401,
            "Not authenticated",
            "log in (POST /api/session) or send an API token",
            resolution="not_authenticated",
        )
    session_id = unsign(request.app.state.cookie_key, cookie)
    if session_id is None:
        raise Problem(
            401,
            "Not authenticated",
            "the session cookie is not valid: log in again",
            resolution="not_authenticated",
        )
    try:
        user, session = accounts.session_user(store, session_id)
    except accounts.AccessError as exc:
        raise Problem(401, "Not authenticated", str(exc), resolution="not_authenticated") from None
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, session.csrf_token):
            raise Problem(
                403,
                "CSRF token missing",
                f"a write with a session cookie needs the session's CSRF token in the {CSRF_HEADER} header "
                "(returned by POST /api/session and GET /api/me)",
                resolution="csrf_failed",
            )
    return Principal(user, user.role, "session")


def authorize(request: Request, role: Role) -> Principal:
    """`principal`, then refuse (403 problem) a caller below `role`. Blocking (it reads the store): the
    `require` dependencies run it in a worker thread; the busiest read endpoints call it in the same worker
    thread call as their query (one thread hop per request instead of two)."""
    who = principal(request)
    if accounts.rank(who.role) < accounts.rank(role):
        raise Problem(
            403, "Forbidden", f"this needs the {role} role; you are {who.role}", resolution="forbidden"
        )
    return who


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers of `role` or above (403 problem otherwise). Async, so FastAPI runs it
    on the event loop and it takes a single worker thread for `authorize` (a sync dependency chain costs a
    thread hop per function)."""

    async def check(request: Request) -> Principal:
        return await run_in_threadpool(authorize, request, role)

    return check


viewer = require("viewer")
operator = require("operator")
admin = require("admin")
