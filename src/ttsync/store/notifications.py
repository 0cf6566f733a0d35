"""Notifications in the store: what a workflow raised, whether it was read, its webhook delivery."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ttsync.errors import NotFoundError
from ttsync.redact import redact_text
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.records import NotificationRecord, Severity
from ttsync.store.rows import utc_now, utc_row


def add_notification(
    store: Store,
    *,
    workflow_id: str | None,
    severity: Severity,
    title: str,
    message: str,
    resolution: str | None = None,
) -> NotificationRecord:
    """Raise a notification (never put PII or secrets in title/message; e-mail addresses are removed anyway,
    since notifications are posted to webhooks)."""
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.insert(schema.notifications).values(
                workflow_id=workflow_id,
                created_at=utc_now(),
                severity=severity,
                title=redact_text(title, digits=False),
                message=redact_text(message, digits=False),
                resolution=resolution,
                read=False,
                webhook_attempts=0,
            )
        )
        new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        row = (
            conn.execute(sa.select(schema.notifications).where(schema.notifications.c.id == new_id))
            .mappings()
            .one()
        )
    return NotificationRecord.model_validate(utc_row(row))


def list_notifications(
    store: Store, *, unread_only: bool = False, limit: int = 100
) -> list[NotificationRecord]:
    """Most recent notifications first."""
    table = schema.notifications
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    if unread_only:
        query = query.where(table.c.read.is_(False))
    with store.read() as conn:
        return [NotificationRecord.model_validate(utc_row(row)) for row in conn.execute(query).mappings()]


def update_notification(
    store: Store,
    notification_id: int,
    *,
    read: bool | None = None,
    webhook_state: str | None = None,
    add_webhook_attempt: bool = False,
) -> None:
    """Mark a notification read and/or record a webhook delivery attempt."""
    table = schema.notifications
    values: dict[str, Any] = {}
    if read is not None:
        values["read"] = read
    if webhook_state is not None:
        values["webhook_state"] = webhook_state
    if add_webhook_attempt:
        values["webhook_attempts"] = table.c.webhook_attempts + 1
    if values:
        with store.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == notification_id).values(**values))


def get_notification(store: Store, notification_id: int) -> NotificationRecord:
    """One notification, or `NotFoundError`."""
    table = schema.notifications
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == notification_id)).mappings().first()
    if row is None:
        raise NotFoundError("notification", str(notification_id))
    return NotificationRecord.model_validate(utc_row(row))
