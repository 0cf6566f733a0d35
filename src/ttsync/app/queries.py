"""The read side the CLI and the web share: workflows and notifications as stored, found by id or prefix."""

from __future__ import annotations

from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import NotificationRecord, WorkflowRecord
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
