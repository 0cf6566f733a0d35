"""The read side the CLI, the REST API and the web pages share: workflows and notifications as stored, found by
id or prefix; offline events per day; the history of an audience."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from pydantic import BaseModel, Field

from ttsync.errors import NotFoundError
from ttsync.store import repos, schema
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


# ---------------------------------------------------------------------------------------------------------
# Events per day and audience history: read from the counts the runs' tasks stored (the `deliver` task of an
# offline-events run keeps its totals, the audience tasks their sizes and changes), so they read the same on
# SQLite and PostgreSQL, and need nothing of the run folders (which `ttsync prune` removes).

DELIVER_TASK: Final = "deliver"
AUDIENCE_TASKS: Final = ("verify_audience", "plan", "upload", "read_back")


class EventDay(BaseModel):
    """Offline events of one UTC day and destination, summed over the runs whose delivery finished that day.

    `accepted`: events TikTok confirmed (the ledger recorded them); `rejected`: by reason code, before sending
    or by TikTok; `duplicates`: events skipped because the ledger says TikTok already has them."""

    day: date
    destination: str | None  # None: the orchestration was deleted since
    runs: int = 0
    accepted: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    rejected_total: int = 0
    duplicates: int = 0


class AudiencePoint(BaseModel):
    """One audience run: which TikTok audience it wrote, what it changed and what TikTok read back after."""

    workflow_id: str
    orchestration: str
    state: str
    time: datetime  # when it finished (when it was created, while it runs or when it never finished)
    audience_id: str | None
    advertiser_id: str | None
    size: int | None  # TikTok's size read back after the run
    match_rate: float | None
    adds: int | None
    removes: int | None


def _task_rows(
    store: Store, *, kind: str, task_names: Sequence[str], orchestrations: Collection[str] | None = None
) -> list[sa.RowMapping]:
    """(workflow id, orchestration, state, created, finished, task name, task finished, task counts) of the
    named tasks of every workflow of `kind` (of `orchestrations` when given), newest workflow first."""
    w, t = schema.workflows, schema.tasks
    query = (
        sa.select(
            w.c.id,
            w.c.orchestration,
            w.c.state,
            w.c.created_at,
            w.c.finished_at,
            t.c.name.label("task"),
            t.c.finished_at.label("task_finished_at"),
            t.c.counts,
        )
        .join(t, t.c.workflow_id == w.c.id)
        .where(w.c.kind == kind, t.c.name.in_(list(task_names)))
        .order_by(w.c.created_at.desc(), w.c.id)
    )
    if orchestrations is not None:
        query = query.where(w.c.orchestration.in_(list(orchestrations)))
    with store.engine.connect() as conn:
        return list(conn.execute(query).mappings().all())


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def events_per_day(
    store: Store,
    *,
    destination: str | None = None,
    days: int = 30,
    exclude_orchestrations: Collection[str] = (),
    now: datetime | None = None,
) -> list[EventDay]:
    """Offline events accepted, rejected by reason and skipped as duplicates, per UTC day and destination,
    for the last `days` days (today included), newest day first.

    Counted from the totals each run's `deliver` task stored (the ledger holds keys only, and a run's
    outcome file goes with its run folder). A run counts on the day its delivery finished; a delivery that
    failed stored no totals and counts nothing (its retry counts what it sends, and what the failed attempt
    sent shows up there as duplicates)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    by_orchestration = {o.name: o.destination for o in repos.list_orchestrations(store)}
    wanted = None
    if destination is not None:
        wanted = [name for name, dest in by_orchestration.items() if dest == destination]
    out: dict[tuple[date, str | None], EventDay] = {}
    for row in _task_rows(store, kind="offline_events", task_names=[DELIVER_TASK], orchestrations=wanted):
        finished = _utc(row["task_finished_at"])
        counts = row["counts"] or {}
        if finished is None or "sent" not in counts or row["orchestration"] in exclude_orchestrations:
            continue
        day = finished.date()
        if day < first or day > today:
            continue
        dest = by_orchestration.get(row["orchestration"])
        item = out.setdefault((day, dest), EventDay(day=day, destination=dest))
        item.runs += 1
        item.accepted += _int(counts.get("sent"))
        item.duplicates += _int(counts.get("duplicate_skipped"))
        for reason, n in (counts.get("rejected") or {}).items():
            item.rejected[str(reason)] = item.rejected.get(str(reason), 0) + _int(n)
            item.rejected_total += _int(n)
    return sorted(out.values(), key=lambda d: (-d.day.toordinal(), d.destination or ""))


def audience_history(
    store: Store,
    orchestration_or_audience: str,
    *,
    limit: int = 200,
    exclude_orchestrations: Collection[str] = (),
) -> list[AudiencePoint]:
    """The runs of an audience orchestration (or of the orchestration that writes TikTok audience
    `orchestration_or_audience`, given its id), newest first: audience, advertiser, size and match rate read
    back, ids added and removed. `NotFoundError` when neither names anything (or only an orchestration in
    `exclude_orchestrations`: those hidden from the caller).

    The advertiser is the one the workspace keeps the audience on (the audience state); a run of an audience
    the workspace no longer keeps reads it as None."""
    name = orchestration_or_audience
    states = repos.list_audience_states(store)
    only_audience: str | None = None
    if not any(o.name == name for o in repos.list_orchestrations(store)):
        owners = {s.orchestration for s in states if s.audience_id == name}
        if len(owners) != 1:
            raise NotFoundError("orchestration", name)
        only_audience, name = name, owners.pop()
    if name in exclude_orchestrations:
        raise NotFoundError("orchestration", orchestration_or_audience)
    advertisers = {s.audience_id: s.advertiser_id for s in states if s.orchestration == name}
    runs: dict[str, dict[str, Any]] = {}
    for row in _task_rows(store, kind="audience", task_names=AUDIENCE_TASKS, orchestrations=[name]):
        run = runs.setdefault(row["id"], {"row": row})
        run[row["task"]] = row["counts"] or {}
    points = []
    for run in runs.values():
        row = run["row"]
        back, upload, plan = run.get("read_back", {}), run.get("upload", {}), run.get("plan", {})
        audience_id = back.get("audience_id") or run.get("verify_audience", {}).get("audience_id")
        audience_id = audience_id or upload.get("audience_id")
        if only_audience is not None and audience_id != only_audience:
            continue
        adds = upload.get("added_ids", plan.get("add_ids"))
        removes = upload.get("removed_ids", plan.get("remove_ids"))
        points.append(
            AudiencePoint(
                workflow_id=row["id"],
                orchestration=row["orchestration"],
                state=row["state"],
                time=_utc(row["finished_at"] or row["created_at"]) or row["created_at"],
                audience_id=audience_id,
                advertiser_id=advertisers.get(audience_id) if audience_id else None,
                size=back.get("tiktok_size"),
                match_rate=back.get("match_rate"),
                adds=adds,
                removes=removes,
            )
        )
        if len(points) >= limit:
            break
    return points
