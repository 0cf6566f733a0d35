"""The server's run queue and schedule state.

A run asked for by the API or a schedule is a `run_queue` row first (`queued`); a worker process claims it
atomically (`claim_next`: of two workers exactly one gets a row), runs it, and records how it ended. Rows
live in the store, so a restarted server finds its queued runs again. A row runs an orchestration, or a
whole campaign (`kind="campaign"`: `orchestration` then holds the campaign's name, and `workflow_id` is the
campaign run's own id; each delivery is a workflow of its own).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from ttsync.errors import NotFoundError
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.rows import utc_now, utc_row

QueueState = Literal["queued", "running", "done", "refused", "lost", "cancelled"]
RunAction = Literal["run", "retry", "resolve", "restart"]
RunKind = Literal["orchestration", "campaign"]
ACTIVE_STATES: tuple[QueueState, ...] = ("queued", "running")


class QueuedRun(BaseModel):
    """A run the server was asked for."""

    model_config = ConfigDict(extra="forbid")

    id: str
    orchestration: str
    action: RunAction
    workflow_id: str
    requested_by: str
    origin: Literal["api", "schedule"]
    state: QueueState
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    holder_pid: int | None = None
    holder_host: str | None = None
    cancel_requested: bool = False
    detail: str | None = None
    kind: RunKind = "orchestration"
    run_day: date | None = None  # a campaign run's day, in the server's time zone


class ScheduleRecord(BaseModel):
    """Next and last run of an orchestration's (or, `kind="campaign"`, a campaign's) schedule."""

    model_config = ConfigDict(extra="forbid")

    orchestration: str  # the orchestration's name, or the campaign's
    kind: RunKind = "orchestration"
    cron: str
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_outcome: str | None = None
    updated_at: datetime


def enqueue(store: Store, run: QueuedRun) -> None:
    """Add a queued run."""
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.run_queue).values(**run.model_dump()))


def get_queued(store: Store, run_id: str) -> QueuedRun:
    """The queue row, or `NotFoundError`."""
    table = schema.run_queue
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFoundError("queued run", run_id)
    return QueuedRun.model_validate(utc_row(row))


def active_for(
    store: Store,
    *,
    orchestration: str | None = None,
    workflow_id: str | None = None,
    kind: RunKind = "orchestration",
) -> list[QueuedRun]:
    """Queued or running rows of an orchestration (or, with `kind="campaign"`, a campaign) or of a
    workflow, oldest first."""
    table = schema.run_queue
    query = sa.select(table).where(table.c.state.in_(ACTIVE_STATES)).order_by(table.c.requested_at)
    if orchestration is not None:
        query = query.where(table.c.orchestration == orchestration, table.c.kind == kind)
    if workflow_id is not None:
        query = query.where(table.c.workflow_id == workflow_id)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [QueuedRun.model_validate(utc_row(row)) for row in rows]


def claim_next(store: Store, pid: int, host: str) -> QueuedRun | None:
    """Take the oldest queued run for this worker (atomically), or None when the queue is empty."""
    table = schema.run_queue
    with store.engine.begin() as conn:
        query = sa.select(table.c.id).where(table.c.state == "queued").order_by(table.c.requested_at).limit(1)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        run_id = conn.execute(query).scalar()
        if run_id is None:
            return None
        result = conn.execute(
            sa.update(table)
            .where(table.c.id == run_id, table.c.state == "queued")
            .values(state="running", started_at=utc_now(), holder_pid=pid, holder_host=host)
        )
        if result.rowcount != 1:
            return None
        row = conn.execute(sa.select(table).where(table.c.id == run_id)).mappings().one()
    return QueuedRun.model_validate(utc_row(row))


def finish(store: Store, run_id: str, state: QueueState, detail: str | None = None) -> None:
    """Record how a claimed run ended."""
    table = schema.run_queue
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.id == run_id)
            .values(state=state, finished_at=utc_now(), detail=detail)
        )


def request_cancel(store: Store, workflow_id: str) -> list[QueuedRun]:
    """Ask the worker of a workflow to stop at its next batch boundary; a still-queued run is dropped now."""
    table = schema.run_queue
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.workflow_id == workflow_id, table.c.state == "queued")
            .values(state="cancelled", finished_at=utc_now(), detail="cancelled before it started")
        )
        conn.execute(
            sa.update(table)
            .where(table.c.workflow_id == workflow_id, table.c.state == "running")
            .values(cancel_requested=True)
        )
    return active_for(store, workflow_id=workflow_id)


def cancel_requested(store: Store, run_id: str) -> bool:
    """Whether someone asked this run to stop."""
    table = schema.run_queue
    with store.read() as conn:
        return bool(conn.execute(sa.select(table.c.cancel_requested).where(table.c.id == run_id)).scalar())


def running_rows(store: Store) -> list[QueuedRun]:
    """Rows claimed by a worker and not finished."""
    table = schema.run_queue
    with store.read() as conn:
        rows = conn.execute(sa.select(table).where(table.c.state == "running")).mappings().all()
    return [QueuedRun.model_validate(utc_row(row)) for row in rows]


def count_by_state(store: Store) -> dict[str, int]:
    """Queue rows per state."""
    table = schema.run_queue
    with store.read() as conn:
        rows = conn.execute(sa.select(table.c.state, sa.func.count()).group_by(table.c.state)).all()
    return {str(state): int(count) for state, count in rows}


# --- schedules ---------------------------------------------------------------------------------------------


def _schedule_table(kind: RunKind) -> tuple[sa.Table, sa.Column[str]]:
    if kind == "campaign":
        return schema.campaign_schedule_state, schema.campaign_schedule_state.c.campaign
    return schema.schedule_state, schema.schedule_state.c.orchestration


def _schedule(row: sa.RowMapping, kind: RunKind) -> ScheduleRecord:
    values = dict(utc_row(row))
    if kind == "campaign":
        values["orchestration"] = values.pop("campaign")
    return ScheduleRecord.model_validate(values | {"kind": kind})


def get_schedule(store: Store, name: str, kind: RunKind = "orchestration") -> ScheduleRecord | None:
    """The schedule state of an orchestration (or a campaign), or None before the scheduler first saw it."""
    table, key = _schedule_table(kind)
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(key == name)).mappings().first()
    return None if row is None else _schedule(row, kind)


def list_schedules(store: Store) -> list[ScheduleRecord]:
    """Every schedule state: orchestrations by name, then campaigns by name."""
    out = []
    kinds: tuple[RunKind, ...] = ("orchestration", "campaign")
    with store.read() as conn:
        for kind in kinds:
            table, key = _schedule_table(kind)
            rows = conn.execute(sa.select(table).order_by(key)).mappings().all()
            out += [_schedule(row, kind) for row in rows]
    return out


def put_schedule(store: Store, record: ScheduleRecord) -> None:
    """Insert or replace a schedule state."""
    table, key = _schedule_table(record.kind)
    values = record.model_dump(exclude={"kind", "orchestration"}) | {key.name: record.orchestration}
    with store.engine.begin() as conn:
        result = conn.execute(sa.update(table).where(key == record.orchestration).values(**values))
        if result.rowcount == 0:
            conn.execute(sa.insert(table).values(**values))


def for_workflow(store: Store, workflow_id: str) -> list[QueuedRun]:
    """Every queue row of a workflow (its runs, retries and resolves), oldest first."""
    table = schema.run_queue
    query = sa.select(table).where(table.c.workflow_id == workflow_id).order_by(table.c.requested_at)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [QueuedRun.model_validate(utc_row(row)) for row in rows]
