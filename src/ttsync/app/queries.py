"""The read side the CLI and the web share: workflows and notifications as stored, found by id or prefix;
campaigns and segments."""

from __future__ import annotations

from ttsync.config.campaigns import Campaign, Segment
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import NotificationRecord as NotificationRecord
from ttsync.store.records import WorkflowRecord as WorkflowRecord
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


def list_campaigns(store: Store) -> list[Campaign]:
    """Every campaign, by name."""
    return repos.list_campaigns(store)


def get_campaign(store: Store, name: str) -> Campaign:
    """One campaign; `NotFoundError` (which says how to list them) when there is none."""
    return repos.get_campaign(store, name)


def list_segments(store: Store) -> list[Segment]:
    """Every segment, by name."""
    return repos.list_segments(store)


def stored_row_keys(store: Store, values: list[str]) -> list[str]:
    """The row key each warehouse key value is stored as in run folders and write-back tables, in order
    (identifier-like keys keyed-hashed with the workspace's key; other values unchanged)."""
    from ttsync.writeback.rowkey import stored_row_keys as row_keys
    from ttsync.writeback.rowkey import workspace_hasher

    return row_keys(workspace_hasher(store), values)
