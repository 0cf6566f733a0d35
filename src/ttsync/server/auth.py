"""Who is calling: a bearer API token, or a session cookie (signed, HttpOnly, SameSite=Lax; Secure behind
TLS) whose writes must carry the session's CSRF token in `X-CSRF-Token`. Roles: viewer < operator < admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from ttsync.app import accounts
from ttsync.server.problems import Problem
from ttsync.store.accounts import Role, TokenRecord, UserRecord, get_or_create_setting
from ttsync.store.db import Store

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


class TokenCache:
    """Bearer tokens this process verified in the last `ttl` seconds, by the token's SHA-256 (never the token).

    Every API call of a script carries its token; verifying it reads the token and its user from the store.
    A hit skips both reads. `clear()` runs after every write this process serves (a revoke, a disabled user,
    a changed role take effect on the next request); a change made through another process (another HTTP
    worker, the CLI) takes effect within `ttl` seconds."""

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, UserRecord, TokenRecord]] = {}
        self._lock = threading.Lock()

    def verify(self, store: Store, token: str) -> tuple[UserRecord, TokenRecord]:
        """`accounts.token_user`, answered from the cache while fresh; failures are never cached."""
        key = accounts.sha256(token)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], hit[2]
        user, item = accounts.token_user(store, token)
        with self._lock:
            if len(self._items) > 10_000:  # bounded: forget everything rather than grow
                self._items.clear()
            self._items[key] = (now, user, item)
        return user, item

    def clear(self) -> None:
        """Forget every verified token (after a write that may revoke one or change a user)."""
        with self._lock:
            self._items.clear()


def store_of(request: Request) -> Store:
    """The server's store."""
    store: Store = request.app.state.store
    return store


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
        tokens: TokenCache = request.app.state.tokens
        try:
            user, item = tokens.verify(store, token.strip())
        except accounts.AccessError as exc:
            raise Problem(401, "Not authenticated", str(exc), resolution="not_authenticated") from None
        role = item.role if accounts.rank(item.role) <= accounts.rank(user.role) else user.role
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


def require(role: Role) -> Callable[..., Principal]:
    """A dependency admitting callers of `role` or above (403 problem otherwise)."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if accounts.rank(who.role) < accounts.rank(role):
            raise Problem(
                403, "Forbidden", f"this needs the {role} role; you are {who.role}", resolution="forbidden"
            )
        return who

    return check


viewer = require("viewer")
operator = require("operator")
admin = require("admin")
