"""Workflows and their tasks in the store: create, read, page, update."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ttsync.errors import AmbiguousIdError, NotFoundError
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.records import TaskRecord, TaskState, WorkflowRecord, WorkflowState
from ttsync.store.rows import UNSET, Unset, utc_now, utc_row


def create_workflow(
    store: Store, orchestration: str, kind: str, task_names: Sequence[str], *, workflow_id: str | None = None
) -> WorkflowRecord:
    """Create a pending workflow with its tasks in order."""
    wid = workflow_id or uuid.uuid4().hex
    now = utc_now()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.workflows).values(
                id=wid,
                orchestration=orchestration,
                kind=kind,
                state="pending",
                created_at=now,
                counts={},
                checkpoint={},
            )
        )
        if task_names:
            conn.execute(
                sa.insert(schema.tasks),
                [
                    {
                        "workflow_id": wid,
                        "name": name,
                        "position": i,
                        "state": "pending",
                        "attempts": 0,
                        "counts": {},
                        "checkpoint": {},
                    }
                    for i, name in enumerate(task_names)
                ],
            )
    return get_workflow(store, wid)


def get_workflow(store: Store, workflow_id: str) -> WorkflowRecord:
    """A workflow with its tasks."""
    with store.read() as conn:
        row = (
            conn.execute(sa.select(schema.workflows).where(schema.workflows.c.id == workflow_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError("workflow", workflow_id)
        task_rows = conn.execute(
            sa.select(schema.tasks)
            .where(schema.tasks.c.workflow_id == workflow_id)
            .order_by(schema.tasks.c.position)
        ).mappings()
        tasks = [TaskRecord.model_validate(utc_row(t)) for t in task_rows]
    return WorkflowRecord.model_validate(utc_row(row) | {"tasks": tasks})


MIN_ID_PREFIX = 4  # as git: shorter prefixes are refused rather than guessed


def resolve_workflow_id(store: Store, text: str) -> str:
    """The full id of the workflow whose id is `text` or starts with it (at least 4 characters, like git).

    Raises NotFoundError when none matches, AmbiguousIdError (listing the matches) when several do."""
    text = text.strip()
    ids = schema.workflows.c.id
    with store.read() as conn:
        if conn.execute(sa.select(ids).where(ids == text)).first() is not None:
            return text
        if len(text) < MIN_ID_PREFIX:
            raise NotFoundError("workflow", text)
        # substr rather than LIKE: the prefix is matched literally, `%` and `_` included.
        matches = list(
            conn.execute(
                sa.select(ids).where(sa.func.substr(ids, 1, len(text)) == text).order_by(ids).limit(50)
            ).scalars()
        )
    if not matches:
        raise NotFoundError("workflow", text)
    if len(matches) > 1:
        raise AmbiguousIdError("workflow", text, matches)
    return str(matches[0])


def list_workflows(
    store: Store, *, orchestration: str | None = None, limit: int = 50
) -> list[WorkflowRecord]:
    """Most recent workflows first (without their tasks)."""
    query = sa.select(schema.workflows).order_by(schema.workflows.c.created_at.desc()).limit(limit)
    if orchestration is not None:
        query = query.where(schema.workflows.c.orchestration == orchestration)
    with store.read() as conn:
        return [WorkflowRecord.model_validate(utc_row(row)) for row in conn.execute(query).mappings()]


def update_workflow(
    store: Store,
    workflow_id: str,
    *,
    state: WorkflowState | None = None,
    started_at: datetime | Unset | None = UNSET,
    finished_at: datetime | Unset | None = UNSET,
    counts: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    error: dict[str, Any] | Unset | None = UNSET,
) -> None:
    """Change a workflow's fields; arguments left out keep their values (`error=None` clears the error)."""
    values: dict[str, Any] = {}
    if state is not None:
        values["state"] = state
    if counts is not None:
        values["counts"] = counts
    if checkpoint is not None:
        values["checkpoint"] = checkpoint
    for key, value in (("started_at", started_at), ("finished_at", finished_at), ("error", error)):
        if not isinstance(value, Unset):
            values[key] = value
    if not values:
        return
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(schema.workflows).where(schema.workflows.c.id == workflow_id).values(**values)
        )
    if result.rowcount == 0:
        raise NotFoundError("workflow", workflow_id)


def update_task(
    store: Store,
    workflow_id: str,
    name: str,
    *,
    state: TaskState | None = None,
    started_at: datetime | Unset | None = UNSET,
    finished_at: datetime | Unset | None = UNSET,
    counts: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    error: dict[str, Any] | Unset | None = UNSET,
    add_attempt: bool = False,
) -> None:
    """Change a task's fields (same conventions as `update_workflow`); `add_attempt` counts one more try."""
    table = schema.tasks
    values: dict[str, Any] = {}
    if state is not None:
        values["state"] = state
    if counts is not None:
        values["counts"] = counts
    if checkpoint is not None:
        values["checkpoint"] = checkpoint
    if add_attempt:
        values["attempts"] = table.c.attempts + 1
    for key, value in (("started_at", started_at), ("finished_at", finished_at), ("error", error)):
        if not isinstance(value, Unset):
            values[key] = value
    if not values:
        return
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(table).where(table.c.workflow_id == workflow_id, table.c.name == name).values(**values)
        )
    if result.rowcount == 0:
        raise NotFoundError("task", f"{workflow_id}/{name}")


def page_workflows(
    store: Store,
    *,
    orchestration: str | None = None,
    state: str | None = None,
    exclude_orchestrations: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[WorkflowRecord]:
    """One page of workflows, newest first (without their tasks), filtered by orchestration and state."""
    table = schema.workflows
    query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit).offset(offset)
    if orchestration is not None:
        query = query.where(table.c.orchestration == orchestration)
    if state is not None:
        query = query.where(table.c.state == state)
    if exclude_orchestrations:
        query = query.where(table.c.orchestration.not_in(list(exclude_orchestrations)))
    with store.read() as conn:
        return [WorkflowRecord.model_validate(utc_row(row)) for row in conn.execute(query).mappings()]


def count_workflows_by_state(store: Store) -> list[tuple[str, str, int]]:
    """(orchestration, state, count) of every stored workflow: the runs metric of the server."""
    table = schema.workflows
    query = sa.select(table.c.orchestration, table.c.state, sa.func.count()).group_by(
        table.c.orchestration, table.c.state
    )
    with store.read() as conn:
        return [(str(o), str(s), int(n)) for o, s, n in conn.execute(query).all()]


def workflow_ids_of(store: Store, orchestrations: Sequence[str]) -> list[str]:
    """Ids of every workflow of these orchestrations."""
    table = schema.workflows
    query = sa.select(table.c.id).where(table.c.orchestration.in_(list(orchestrations)))
    with store.read() as conn:
        return [str(i) for i in conn.execute(query).scalars()]
