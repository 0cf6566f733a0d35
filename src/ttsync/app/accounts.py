"""Users, API tokens, sessions and login throttling of the team server (`ttsync serve`, `ttsync users`).

Passwords are hashed with argon2id (argon2-cffi); API tokens and session ids are random 256-bit values of
which only a SHA-256 is stored, so a copy of the store lets nobody in. Every change is audited
(`app.audit`), never with a password or token in it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ttsync.app.audit import record
from ttsync.errors import NotFoundError
from ttsync.store import accounts
from ttsync.store.accounts import ROLES, Role, SessionRecord, TokenRecord
from ttsync.store.accounts import UserRecord as UserRecord
from ttsync.store.db import Store
from ttsync.store.rows import utc_now

log = logging.getLogger(__name__)

_HASHER = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "ttsync_"  # noqa: S105 (a prefix that tells a ttsync token apart, not a secret)
MAX_FAILURES_ENV = "TTSYNC_LOGIN_MAX_FAILURES"
LOCKOUT_ENV = "TTSYNC_LOGIN_LOCKOUT_SECONDS"
SESSION_ENV = "TTSYNC_SESSION_SECONDS"
# Verified against when the user does not exist, so an unknown name costs as much time as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class AccessError(Exception):
    """A login, token or permission was refused; the message says why without helping a guesser."""


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, e.g. {default:g}; got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be more than 0; got {text!r}")
    return value


def rank(role: Role) -> int:
    """viewer 0 < operator 1 < admin 2."""
    return ROLES.index(role)


def check_role(role: str) -> Role:
    """The role named, or `ValueError` listing the roles."""
    for known in ROLES:
        if role == known:
            return known
    raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def check_password(password: str) -> None:
    """Refuse a password too short to resist guessing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def sha256(text: str) -> str:
    """Hex SHA-256 of a random token or session id (what the store keeps)."""
    return hashlib.sha256(text.encode()).hexdigest()


# --- users -------------------------------------------------------------------------------------------------


def add_user(
    store: Store, name: str, password: str, role: str, *, restricted_pii: bool = False, actor: str
) -> UserRecord:
    """Create a user with an argon2 hash of `password`."""
    checked = check_role(role)
    check_password(password)
    accounts.add_user(store, name, _HASHER.hash(password), checked, restricted_pii=restricted_pii)
    record(store, actor, "user.add", f"user:{name}", {"role": checked, "restricted_pii": restricted_pii})
    return accounts.get_user(store, name)


def set_role(
    store: Store, name: str, role: str, *, actor: str, restricted_pii: bool | None = None
) -> UserRecord:
    """Change a user's role (and restricted-PII mark); their sessions end so the new rights apply at once."""
    checked = check_role(role)
    user = accounts.get_user(store, name)
    if (
        user.role == "admin"
        and checked != "admin"
        and not user.disabled
        and accounts.count_admins(store) <= 1
    ):
        raise ValueError(
            f"{name} is the last admin: add another admin first (`ttsync users add NAME --role admin`)"
        )
    values: dict[str, object] = {"role": checked}
    if restricted_pii is not None:
        values["restricted_pii"] = restricted_pii
    accounts.update_user(store, name, **values)
    accounts.delete_sessions(store, user_name=name)
    record(store, actor, "user.set_role", f"user:{name}", {"from": user.role, **values})
    return accounts.get_user(store, name)


def set_disabled(store: Store, name: str, disabled: bool, *, actor: str) -> UserRecord:
    """Disable (or enable) a user: a disabled user's sessions and tokens stop working."""
    user = accounts.get_user(store, name)
    if disabled and user.role == "admin" and not user.disabled and accounts.count_admins(store) <= 1:
        raise ValueError(
            f"{name} is the last admin: add another admin first (`ttsync users add NAME --role admin`)"
        )
    accounts.update_user(store, name, disabled=disabled, failed_logins=0, locked_until=None)
    accounts.delete_sessions(store, user_name=name)
    record(store, actor, "user.disable" if disabled else "user.enable", f"user:{name}", {})
    return accounts.get_user(store, name)


def list_users(store: Store) -> list[UserRecord]:
    """Every user, by name."""
    return accounts.list_users(store)


def has_admin(store: Store) -> bool:
    """Whether an enabled admin exists (the server refuses to start without one)."""
    return accounts.count_admins(store) > 0


# --- logging in --------------------------------------------------------------------------------------------


def authenticate(store: Store, name: str, password: str) -> UserRecord:
    """The user whose password this is; `AccessError` otherwise. After $TTSYNC_LOGIN_MAX_FAILURES (5) wrong
    passwords in a row the account is locked for $TTSYNC_LOGIN_LOCKOUT_SECONDS (900), and that is logged."""
    try:
        user = accounts.get_user(store, name)
    except NotFoundError:
        _verify(_DUMMY_HASH, password)
        raise AccessError("wrong user name or password") from None
    now = utc_now()
    if user.locked_until is not None and user.locked_until > now:
        raise AccessError("too many failed logins: this account is locked for a while; try again later")
    if not _verify(user.password_hash, password) or user.disabled:
        failures = user.failed_logins + 1
        limit = int(_env_number(MAX_FAILURES_ENV, 5))
        locked_until = None
        if failures >= limit:
            locked_until = now + timedelta(seconds=_env_number(LOCKOUT_ENV, 900))
            log.warning("login: user %s locked after %d failed logins", name, failures)
            record(store, "system", "user.locked", f"user:{name}", {"failed_logins": failures})
            failures = 0
        accounts.update_user(store, name, failed_logins=failures, locked_until=locked_until)
        raise AccessError("wrong user name or password")
    if user.failed_logins or user.locked_until:
        accounts.update_user(store, name, failed_logins=0, locked_until=None)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class NewSession:
    """What a login hands the browser: the session id (cookie) and its CSRF token."""

    session_id: str
    csrf_token: str
    expires_at: datetime


def open_session(store: Store, user: UserRecord) -> NewSession:
    """Start a session for a logged-in user."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utc_now()
    expires = now + timedelta(seconds=_env_number(SESSION_ENV, 12 * 3600))
    accounts.add_session(
        store,
        SessionRecord(
            id_hash=sha256(session_id),
            user_name=user.name,
            csrf_token=csrf,
            created_at=now,
            expires_at=expires,
        ),
    )
    record(store, user.name, "session.login", f"user:{user.name}", {})
    return NewSession(session_id, csrf, expires)


def session_user(store: Store, session_id: str) -> tuple[UserRecord, SessionRecord]:
    """The user and session of a cookie's session id; `AccessError` when unknown, expired or disabled."""
    session = accounts.get_session(store, sha256(session_id))
    if session is None:
        raise AccessError("not logged in (or the session ended): log in again")
    if session.expires_at <= utc_now():
        accounts.delete_sessions(store, id_hash=session.id_hash)
        raise AccessError("the session expired: log in again")
    user = accounts.get_user(store, session.user_name)
    if user.disabled:
        raise AccessError("this user is disabled")
    return user, session


def close_session(store: Store, session_id: str) -> None:
    """Log out."""
    accounts.delete_sessions(store, id_hash=sha256(session_id))


# --- API tokens --------------------------------------------------------------------------------------------


def create_token(
    store: Store, user: UserRecord, label: str, role: str | None, *, actor: str
) -> tuple[str, TokenRecord]:
    """A new token for `user`, scoped to `role` (default: the user's; never above it). The plaintext is
    returned once and never stored."""
    scope = check_role(role) if role else user.role
    if rank(scope) > rank(user.role):
        raise ValueError(f"a token's role cannot be above its user's role ({user.role})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    item = TokenRecord(
        id=secrets.token_hex(8),
        user_name=user.name,
        label=label,
        token_hash=sha256(token),
        role=scope,
        created_at=utc_now(),
    )
    accounts.add_token(store, item)
    record(
        store, actor, "token.create", f"token:{item.id}", {"user": user.name, "label": label, "role": scope}
    )
    return token, item


def token_user(store: Store, token: str) -> tuple[UserRecord, TokenRecord]:
    """The user and token of a bearer token; `AccessError` when unknown, revoked or its user disabled."""
    item = accounts.token_by_hash(store, sha256(token))
    if item is None or item.revoked_at is not None:
        raise AccessError("unknown or revoked API token")
    user = accounts.get_user(store, item.user_name)
    if user.disabled:
        raise AccessError("this token's user is disabled")
    if item.last_used_at is None or utc_now() - item.last_used_at > timedelta(seconds=60):
        # Minute resolution is enough for "last used", and spares every API call a write transaction.
        accounts.touch_token(store, item.id)
    return user, item


def revoke_token(store: Store, token_id: str, *, actor: str) -> None:
    """Revoke a token (its row stays, for the audit trail)."""
    accounts.get_token(store, token_id)
    accounts.revoke_token(store, token_id)
    record(store, actor, "token.revoke", f"token:{token_id}", {})
