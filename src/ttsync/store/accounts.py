"""Rows of the team server's access tables: users, API tokens, sessions, the audit log, server settings.

Only hashes are stored: argon2 for passwords (computed in `app.accounts`), SHA-256 for API tokens and session
ids (random 256-bit values, so a fast hash is enough and lookups stay one indexed read).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from ttsync.errors import NotFoundError
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.rows import utc_now, utc_row

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserRecord(_Record):
    """A person who may log in to the server."""

    name: str
    password_hash: str
    role: Role
    restricted_pii: bool = False
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TokenRecord(_Record):
    """An API token (its hash), scoped to a role no higher than its user's."""

    id: str
    user_name: str
    label: str
    token_hash: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SessionRecord(_Record):
    """A logged-in browser session (its id's hash) with its CSRF token."""

    id_hash: str
    user_name: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


class AuditRecord(_Record):
    """One entry of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


# --- users -------------------------------------------------------------------------------------------------


def add_user(store: Store, name: str, password_hash: str, role: Role, *, restricted_pii: bool) -> None:
    """Insert a user; `ValueError` when the name is taken."""
    now = utc_now()
    try:
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(schema.users).values(
                    name=name,
                    password_hash=password_hash,
                    role=role,
                    restricted_pii=restricted_pii,
                    disabled=False,
                    failed_logins=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    except sa.exc.IntegrityError:
        raise ValueError(
            f"user {name!r} already exists: pick another name or use `ttsync users set-role`"
        ) from None


def get_user(store: Store, name: str) -> UserRecord:
    """The user, or `NotFoundError`."""
    table = schema.users
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError("user", name)
    return UserRecord.model_validate(utc_row(row))


def list_users(store: Store) -> list[UserRecord]:
    """Every user, by name."""
    table = schema.users
    with store.read() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.name)).mappings().all()
    return [UserRecord.model_validate(utc_row(row)) for row in rows]


def update_user(store: Store, name: str, **values: Any) -> None:
    """Change a user's columns; `NotFoundError` for an unknown user."""
    table = schema.users
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(table).where(table.c.name == name).values(updated_at=utc_now(), **values)
        )
    if result.rowcount == 0:
        raise NotFoundError("user", name)


def count_admins(store: Store) -> int:
    """Enabled admin users."""
    table = schema.users
    with store.read() as conn:
        value = conn.execute(
            sa.select(sa.func.count()).where(table.c.role == "admin", table.c.disabled.is_(False))
        ).scalar()
    return int(value or 0)


# --- API tokens --------------------------------------------------------------------------------------------


def add_token(store: Store, record: TokenRecord) -> None:
    """Store a token's hash."""
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.api_tokens).values(**record.model_dump()))


def token_by_hash(store: Store, token_hash: str) -> TokenRecord | None:
    """The token with this hash, revoked or not, or None."""
    table = schema.api_tokens
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.token_hash == token_hash)).mappings().first()
    return None if row is None else TokenRecord.model_validate(utc_row(row))


def list_tokens(store: Store, user_name: str | None = None) -> list[TokenRecord]:
    """Tokens (of one user when given), newest first."""
    table = schema.api_tokens
    query = sa.select(table).order_by(table.c.created_at.desc())
    if user_name is not None:
        query = query.where(table.c.user_name == user_name)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [TokenRecord.model_validate(utc_row(row)) for row in rows]


def get_token(store: Store, token_id: str) -> TokenRecord:
    """The token with this id, or `NotFoundError`."""
    table = schema.api_tokens
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == token_id)).mappings().first()
    if row is None:
        raise NotFoundError("token", token_id)
    return TokenRecord.model_validate(utc_row(row))


def touch_token(store: Store, token_id: str) -> None:
    """Record a use of the token now."""
    table = schema.api_tokens
    with store.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == token_id).values(last_used_at=utc_now()))


def revoke_token(store: Store, token_id: str) -> None:
    """Mark the token revoked (kept for the audit trail)."""
    table = schema.api_tokens
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.id == token_id, table.c.revoked_at.is_(None))
            .values(revoked_at=utc_now())
        )


# --- sessions ----------------------------------------------------------------------------------------------


def add_session(store: Store, record: SessionRecord) -> None:
    """Store a session (its id's hash)."""
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.sessions).values(**record.model_dump()))


def get_session(store: Store, id_hash: str) -> SessionRecord | None:
    """The session with this id hash, or None."""
    table = schema.sessions
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.id_hash == id_hash)).mappings().first()
    return None if row is None else SessionRecord.model_validate(utc_row(row))


def delete_sessions(store: Store, *, id_hash: str | None = None, user_name: str | None = None) -> None:
    """Remove one session, or every session of a user (disabled, role changed)."""
    table = schema.sessions
    query = sa.delete(table)
    if id_hash is not None:
        query = query.where(table.c.id_hash == id_hash)
    if user_name is not None:
        query = query.where(table.c.user_name == user_name)
    with store.engine.begin() as conn:
        conn.execute(query)


# --- audit log ---------------------------------------------------------------------------------------------


def add_audit(store: Store, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
    """Append an entry (callers pass no secret in `details`)."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.audit_log).values(
                at=utc_now(), actor=actor, action=action, target=target, details=details
            )
        )


def list_audit(
    store: Store, *, limit: int = 100, offset: int = 0, actor: str | None = None, action: str | None = None
) -> list[AuditRecord]:
    """Entries, newest first."""
    table = schema.audit_log
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit).offset(offset)
    if actor is not None:
        query = query.where(table.c.actor == actor)
    if action is not None:
        query = query.where(table.c.action == action)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [AuditRecord.model_validate(utc_row(row)) for row in rows]


# --- server settings ---------------------------------------------------------------------------------------


def get_or_create_setting(store: Store, key: str, make: Any) -> str:
    """The stored value of `key`; stores `make()` first when absent (of two racing servers, one wins)."""
    table = schema.server_settings
    with store.read() as conn:
        value = conn.execute(sa.select(table.c.value).where(table.c.key == key)).scalar()
    if value is not None:
        return str(value)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.insert(table).values(key=key, value=str(make())))
    except sa.exc.IntegrityError:
        pass  # another server stored it first: use theirs
    with store.read() as conn:
        return str(conn.execute(sa.select(table.c.value).where(table.c.key == key)).scalar_one())
