"""The audit log: every change, run start, retry and resolve, by whom and when (`ttsync audit`, the API).

Details are redacted before they are stored: a key that names a secret keeps only "(set)".
"""

from __future__ import annotations

from typing import Any

from ttsync.store import accounts
from ttsync.store.accounts import AuditRecord
from ttsync.store.db import Store

_SECRET_WORDS = ("secret", "token", "password")


def _scrub(value: Any, key: str = "") -> Any:
    if any(word in key.lower() for word in _SECRET_WORDS) and value not in (None, "", {}):
        return "(set)" if not isinstance(value, dict | list) else "(redacted)"
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def record(store: Store, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> None:
    """Append an audit entry; secret-looking fields of `details` are replaced by "(set)"."""
    accounts.add_audit(store, actor, action, target, _scrub(details or {}))


def entries(
    store: Store, *, limit: int = 100, offset: int = 0, actor: str | None = None, action: str | None = None
) -> list[AuditRecord]:
    """Audit entries, newest first."""
    return accounts.list_audit(store, limit=limit, offset=offset, actor=actor, action=action)
