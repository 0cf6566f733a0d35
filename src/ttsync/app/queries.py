"""The read side the CLI and the web share: workflows and notifications as stored, found by id or prefix, and
the web UI's page reads (lists with their last run, counts, histories for the charts)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ttsync.config.models import Orchestration
from ttsync.store import repos, runqueue, schema
from ttsync.store.db import Store
from ttsync.store.records import NotificationRecord, WorkflowRecord
from ttsync.store.runqueue import ScheduleRecord
from ttsync.workflows.ownership import reap_interrupted


def list_workflows(
    store: Store, *, orchestration: str | None = None, limit: int = 20
) -> list[WorkflowRecord]:
    """Recent workflows, newest first (of one orchestration when given); a workflow whose process died reads
    `interrupted`, not `running`."""
    reap_interrupted(store)
    return repos.list_workflows(store, orchestration=orchestration, limit=limit)


def find_workflow(store: Store, workflow_id: str) -> WorkflowRecord:
    """The workflow with this id or unique id prefix; `NotFoundError` / `AmbiguousIdError` otherwise."""
    return repos.get_workflow(store, repos.resolve_workflow_id(store, workflow_id))


def show_workflow(store: Store, workflow_id: str) -> WorkflowRecord:
    """`find_workflow` as shown to a user: a workflow whose process died reads `interrupted`, not `running`."""
    reap_interrupted(store)
    return find_workflow(store, workflow_id)


def list_notifications(
    store: Store, *, unread_only: bool = False, mark_read: bool = False
) -> list[NotificationRecord]:
    """Alerts raised by workflows, newest first; `mark_read` marks the listed ones read."""
    items = repos.list_notifications(store, unread_only=unread_only)
    if mark_read:
        for item in items:
            repos.update_notification(store, item.id, read=True)
    return items


# --- the web UI's reads (pages hold no store access of their own) ----------------------------------------


@dataclass(frozen=True)
class OrchestrationRow:
    """An orchestration as its list shows it: the definition, its newest workflow and its schedule."""

    item: Orchestration
    last: WorkflowRecord | None
    schedule: ScheduleRecord | None


def unread_notifications(store: Store) -> int:
    """How many notifications are unread (the header's badge): one COUNT, not a listing."""
    table = schema.notifications
    query = sa.select(sa.func.count()).select_from(table).where(table.c.read.is_(False))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def latest_workflows(store: Store) -> dict[str, WorkflowRecord]:
    """The newest workflow of each orchestration (one query, whatever the number of orchestrations)."""
    table = schema.workflows
    newest = (
        sa.select(table.c.orchestration, sa.func.max(table.c.created_at).label("created_at"))
        .group_by(table.c.orchestration)
        .subquery()
    )
    query = sa.select(table).join(
        newest,
        sa.and_(table.c.orchestration == newest.c.orchestration, table.c.created_at == newest.c.created_at),
    )
    latest: dict[str, WorkflowRecord] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(query).mappings():
            record = WorkflowRecord.model_validate(_utc_row(row))
            latest.setdefault(record.orchestration, record)
    return latest


def orchestration_rows(store: Store, hidden: Collection[str] = ()) -> list[OrchestrationRow]:
    """Every orchestration not in `hidden`, with its last run and schedule, by name."""
    schedules = {item.orchestration: item for item in runqueue.list_schedules(store)}
    latest = latest_workflows(store)
    return [
        OrchestrationRow(item, latest.get(item.name), schedules.get(item.name))
        for item in repos.list_orchestrations(store)
        if item.name not in hidden
    ]


def page_workflows(
    store: Store,
    *,
    orchestration: str | None = None,
    state: str | None = None,
    exclude_orchestrations: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[WorkflowRecord]:
    """One page of workflows, newest first, without their tasks (the workflows list and a history)."""
    return repos.page_workflows(
        store,
        orchestration=orchestration,
        state=state,
        exclude_orchestrations=exclude_orchestrations,
        limit=limit,
        offset=offset,
    )


def page_notifications(store: Store, *, limit: int = 200) -> list[NotificationRecord]:
    """The newest notifications, read or not."""
    return repos.list_notifications(store, unread_only=False, limit=limit)


def _utc_row(row: sa.RowMapping) -> dict[str, Any]:
    # SQLite drops the zone; every timestamp the store writes is UTC (as `store.repos` reads them).
    return {
        key: value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value
        for key, value in row.items()
    }
