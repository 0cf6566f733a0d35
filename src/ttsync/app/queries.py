"""The read side the CLI, the REST API and the web pages share: workflows and notifications as stored, found by
id or prefix; offline events per day; the history of an audience; campaigns, segments and row keys."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, Field

from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.models import Orchestration
from ttsync.errors import NotFoundError
from ttsync.events.ledger import LEDGER_FILE, ledger_counts
from ttsync.store import repos, runqueue, schema
from ttsync.store.db import Store
from ttsync.store.records import NotificationRecord as NotificationRecord
from ttsync.store.records import WorkflowRecord as WorkflowRecord
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
    store: Store,
    *,
    kind: str,
    task_names: Sequence[str],
    orchestrations: Collection[str] | None = None,
    newest: int | None = None,
) -> list[sa.RowMapping]:
    """(workflow id, orchestration, state, created, finished, task name, task finished, task counts) of the
    named tasks of every workflow of `kind` (of `orchestrations` when given; of the `newest` workflows when
    given), newest workflow first."""
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
    if newest is not None:
        # Only the newest workflows' tasks are read (an orchestration may have thousands of runs).
        ids = sa.select(w.c.id).where(w.c.kind == kind).order_by(w.c.created_at.desc(), w.c.id).limit(newest)
        if orchestrations is not None:
            ids = ids.where(w.c.orchestration.in_(list(orchestrations)))
        query = query.where(w.c.id.in_(ids.scalar_subquery()))
    with store.read() as conn:
        return list(conn.execute(query).mappings().all())


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


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
    # Summed by the database per orchestration and day (a 30-day window may hold thousands of deliveries:
    # reading and parsing each one's totals cost most of the events page's render time), merged here per
    # destination (several orchestrations may deliver to one).
    sums: dict[tuple[date, str | None], list[int]] = {}  # runs, accepted, duplicates, rejected total
    reasons: dict[tuple[date, str | None], dict[str, int]] = {}
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    totals, rejects = _delivery_sums(store, wanted, exclude_orchestrations, since)
    for orchestration, day, runs, accepted, duplicates in totals:
        if first <= day <= today:
            key = (day, by_orchestration.get(orchestration))
            total = sums.setdefault(key, [0, 0, 0, 0])
            total[0] += runs
            total[1] += accepted
            total[2] += duplicates
            reasons.setdefault(key, {})
    for orchestration, day, reason, n in rejects:
        if first <= day <= today:
            key = (day, by_orchestration.get(orchestration))
            # setdefault: a delivery stored between the two queries may show up in the second only.
            rejected = reasons.setdefault(key, {})
            rejected[reason] = rejected.get(reason, 0) + n
            sums.setdefault(key, [0, 0, 0, 0])[3] += n
    out = {
        key: EventDay(
            day=key[0],
            destination=key[1],
            runs=runs,
            accepted=accepted,
            duplicates=duplicates,
            rejected=reasons[key],
            rejected_total=rejected_total,
        )
        for key, (runs, accepted, duplicates, rejected_total) in sums.items()
    }
    return sorted(out.values(), key=lambda d: (-d.day.toordinal(), d.destination or ""))


# Per dialect: a stored count as an integer (a JSON integer, else 0: not a boolean, fraction or text), the
# key's presence, the `rejected` object's entries, and the UTC day a task finished (SQLite stores naive UTC,
# PostgreSQL zoned). SQLite's `r.type` and not `json_type(r.value)`: the latter reads the text "7" as 7.
_SQL: Final = {
    "sqlite": {
        "int": "CASE WHEN json_type({doc}, '$.{key}') = 'integer' THEN json_extract({doc}, '$.{key}') ELSE 0 END",
        "has": "json_type(t.counts, '$.sent') IS NOT NULL",
        "each": "json_each(t.counts, '$.rejected') AS r",
        "is_object": "json_type(t.counts, '$.rejected') = 'object'",
        "entry": "r.type = 'integer'",
        "value": "r.value",
        "day": "date(t.finished_at)",
    },
    "postgresql": {
        "int": "CASE WHEN json_typeof({doc} -> '{key}') = 'number' AND ({doc} ->> '{key}') ~ '^-?[0-9]+$'"
        " THEN ({doc} ->> '{key}')::bigint ELSE 0 END",
        "has": "(t.counts -> 'sent') IS NOT NULL",
        "each": "json_each(t.counts -> 'rejected') AS r",
        "is_object": "json_typeof(t.counts -> 'rejected') = 'object'",
        "entry": "json_typeof(r.value) = 'number' AND (r.value #>> '{}') ~ '^-?[0-9]+$'",
        "value": "r.value #>> '{}'",
        "day": "CAST(t.finished_at AT TIME ZONE 'UTC' AS DATE)",
    },
}


def _delivery_sums(
    store: Store, orchestrations: Collection[str] | None, exclude: Collection[str], since: datetime
) -> tuple[list[tuple[str, date, int, int, int]], list[tuple[str, date, str, int]]]:
    """The offline-events `deliver` tasks that stored totals (`sent` among them) and finished at or after
    `since` (of `orchestrations` when given, none of `exclude`), summed per orchestration and UTC day:
    (orchestration, day, runs, accepted, duplicates) and (orchestration, day, reason, rejected)."""
    sql = _SQL["postgresql" if store.engine.dialect.name == "postgresql" else "sqlite"]
    where = [
        "t.name = :task",
        "w.kind = 'offline_events'",
        "t.finished_at >= :since",
        sql["has"],
    ]
    params: dict[str, Any] = {
        "task": DELIVER_TASK,
        # Stored naive on SQLite (UTC) and zoned on PostgreSQL: compare like with like.
        "since": since if store.engine.dialect.name == "postgresql" else since.replace(tzinfo=None),
    }
    expanding = []
    if orchestrations is not None:
        where.append("w.orchestration IN :wanted")
        params["wanted"] = list(orchestrations) or [""]  # an empty IN list: the "" orchestration never exists
        expanding.append("wanted")
    if exclude:
        where.append("w.orchestration NOT IN :exclude")
        params["exclude"] = list(exclude)
        expanding.append("exclude")
    source = "FROM tasks t JOIN workflows w ON w.id = t.workflow_id"
    totals = sa.text(
        f"SELECT w.orchestration, {sql['day']} AS day, COUNT(*),"
        f" SUM({sql['int'].format(doc='t.counts', key='sent')}),"
        f" SUM({sql['int'].format(doc='t.counts', key='duplicate_skipped')})"
        f" {source} WHERE {' AND '.join(where)} GROUP BY w.orchestration, day"
    )
    entry = f"CASE WHEN {sql['entry']} THEN CAST({sql['value']} AS BIGINT) ELSE 0 END"
    rejects = sa.text(
        f"SELECT w.orchestration, {sql['day']} AS day, r.key, SUM({entry}) {source}, {sql['each']}"
        f" WHERE {' AND '.join([*where, sql['is_object']])} GROUP BY w.orchestration, day, r.key"
    )
    for name in expanding:
        totals = totals.bindparams(sa.bindparam(name, expanding=True))
        rejects = rejects.bindparams(sa.bindparam(name, expanding=True))
    with store.read() as conn:
        sums = [
            (o, _day(d), int(runs), int(accepted or 0), int(dups or 0))
            for o, d, runs, accepted, dups in conn.execute(totals, params)
        ]
        rejected = [
            (o, _day(d), str(reason), int(n or 0)) for o, d, reason, n in conn.execute(rejects, params)
        ]
    return sums, rejected


def _day(value: object) -> date:
    """A day as the database returns it: a date (PostgreSQL) or its ISO text (SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


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
    # By audience id, runs of the orchestration's other audiences are skipped: read them all to fill `limit`.
    newest = limit if only_audience is None else None
    for row in _task_rows(
        store, kind="audience", task_names=AUDIENCE_TASKS, orchestrations=[name], newest=newest
    ):
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
    after: str | None = None,
) -> list[WorkflowRecord]:
    """One page of workflows, newest first, without their tasks (the workflows list and a history): those
    after workflow `after` (the last one of the previous page) when given. Keyset paging: a page deep in
    10,000 workflows costs what the first does, where an OFFSET reads every row it skips."""
    table = schema.workflows
    query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
    if orchestration is not None:
        query = query.where(table.c.orchestration == orchestration)
    if state is not None:
        query = query.where(table.c.state == state)
    if exclude_orchestrations:
        query = query.where(table.c.orchestration.not_in(list(exclude_orchestrations)))
    with store.engine.connect() as conn:
        if after is not None:
            anchor = conn.execute(sa.select(table.c.created_at).where(table.c.id == after)).scalar()
            if anchor is None:
                raise NotFoundError("workflow", after)
            same_time_before = sa.and_(table.c.created_at == anchor, table.c.id <= after)
            query = query.where(table.c.created_at <= anchor, sa.not_(same_time_before))
        return [WorkflowRecord.model_validate(_utc_row(row)) for row in conn.execute(query).mappings()]


def page_notifications(store: Store, *, limit: int = 200) -> list[NotificationRecord]:
    """The newest notifications, read or not."""
    return repos.list_notifications(store, unread_only=False, limit=limit)


def _utc_row(row: sa.RowMapping) -> dict[str, Any]:
    return {key: _utc(value) if isinstance(value, datetime) else value for key, value in row.items()}


def ledger_totals(state_dir: Path) -> dict[str, int]:
    """Accepted offline events the ledger holds, per event set (test events apart, as `SET#test`). Read-only:
    a workspace that never sent events has no ledger file, and none is created."""
    path = state_dir / LEDGER_FILE
    if not path.exists():
        return {}
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    try:
        return ledger_counts(con)
    finally:
        con.close()


# --- Lean reads for the API's busiest endpoints ------------------------------------------------------------
# GET /api/workflows and GET /api/workflows/{id} are what scripts and dashboards poll. Their rows go to JSON
# as plain dicts: no pydantic model per row, statements built once, JSON columns read as their stored text
# (SQLAlchemy's stdlib decoder costs more than the rest of the row). Timestamps are left as the driver returns
# them: SQLite's are naive, and UTC (the server's JSON writer says so: `server.jsonout`). The fields are those
# of `WorkflowRecord` / `TaskRecord`, and the API's JSON the same (tests/test_server_lean.py holds them to it).


@dataclass(frozen=True)
class _LeanTable:
    """The columns to select from a table (JSON ones as text), their names, and where the JSON ones are."""

    columns: tuple[sa.ColumnElement[Any], ...]
    names: tuple[str, ...]  # plain `str`: a column's name is a str subclass, which orjson refuses as a key
    json_at: tuple[int, ...]

    @classmethod
    def of(cls, table: sa.Table) -> _LeanTable:
        """`table`'s columns; a JSON one CAST to text on every backend (Postgres would decode it itself)."""
        is_json = [isinstance(c.type, sa.JSON) for c in table.c]
        return cls(
            tuple(
                sa.cast(c, sa.Text).label(c.name) if j else c for c, j in zip(table.c, is_json, strict=True)
            ),
            tuple(str(c.name) for c in table.c),
            tuple(i for i, j in enumerate(is_json) if j),
        )

    def row(self, row: sa.Row[Any], *, fragments: bool = False) -> dict[str, Any]:
        """A fetched row as a dict, its JSON columns parsed; with `fragments`, as `orjson.Fragment`s of their
        stored text instead, which orjson writes into its output as they are (nothing parsed)."""
        values = list(row)
        for i in self.json_at:
            values[i] = _json_fragment(values[i]) if fragments else _json_value(values[i])
        return dict(zip(self.names, values, strict=True))


_LEAN_WORKFLOWS: Final = _LeanTable.of(schema.workflows)
_LEAN_TASKS: Final = _LeanTable.of(schema.tasks)


def _json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # `json` wrote NaN or Infinity, which orjson does not read
        return json.loads(text)


def _json_fragment(text: str | None) -> Any:
    if text is None or "NaN" in text or "Infinity" in text:
        # Python's `json` writes NaN and Infinity, which are not JSON: parse them (the answer says null).
        return _json_value(text)
    return orjson.Fragment(text)


@cache
def _page_query(by_orchestration: bool, by_state: bool) -> sa.Select[Any]:
    table = schema.workflows
    query = sa.select(*_LEAN_WORKFLOWS.columns).order_by(table.c.created_at.desc(), table.c.id)
    query = query.limit(sa.bindparam("limit")).offset(sa.bindparam("offset"))
    if by_orchestration:
        query = query.where(table.c.orchestration == sa.bindparam("orchestration"))
    if by_state:
        query = query.where(table.c.state == sa.bindparam("state"))
    return query


def workflow_page_rows(
    store: Store,
    *,
    orchestration: str | None = None,
    state: str | None = None,
    exclude_orchestrations: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """`repos.page_workflows` (newest first, filtered, OFFSET paging, no tasks) for the API's list: dicts
    with the fields of `WorkflowRecord`, their JSON columns `orjson.Fragment`s (for orjson to write)."""
    query = _page_query(orchestration is not None, state is not None)
    if exclude_orchestrations:
        query = query.where(schema.workflows.c.orchestration.not_in(list(exclude_orchestrations)))
    params = {"orchestration": orchestration, "state": state, "limit": limit, "offset": offset}
    with store.read() as conn:
        rows = conn.execute(query, {k: v for k, v in params.items() if v is not None}).all()
    return [_LEAN_WORKFLOWS.row(row, fragments=True) | {"tasks": []} for row in rows]


def workflow_view(store: Store, workflow_id: str) -> dict[str, Any]:
    """`show_workflow` and the workflow's active queue rows, for the API: `{"workflow": ..., "queue": ...}`,
    the workflow a plain dict with the fields of `WorkflowRecord` (tasks included), the queue rows
    `QueuedRun.model_dump()`s. The workflow with this id or unique prefix; a `running` one whose process died
    reads `interrupted`. `NotFoundError` when no workflow has it (a queued run may: `runqueue.for_workflow`)."""
    found = _workflow_view(store, workflow_id) or _workflow_view(
        store, repos.resolve_workflow_id(store, workflow_id)
    )
    if found is None:
        raise NotFoundError("workflow", workflow_id)
    workflow = found["workflow"]
    if workflow["state"] == "running" and workflow["id"] in reap_interrupted(store):
        # Only a running workflow can be one whose process died: others are shown without a look at leases.
        found = _workflow_view(store, workflow["id"]) or found
    return found


_WORKFLOW: Final = sa.select(*_LEAN_WORKFLOWS.columns).where(schema.workflows.c.id == sa.bindparam("id"))
_TASKS: Final = (
    sa.select(*_LEAN_TASKS.columns)
    .where(schema.tasks.c.workflow_id == sa.bindparam("id"))
    .order_by(schema.tasks.c.position)
)
_ACTIVE_QUEUE: Final = (  # `runqueue.active_for`, with no IN list (SQLAlchemy renders one anew each time)
    sa.select(schema.run_queue)
    .where(
        schema.run_queue.c.workflow_id == sa.bindparam("id"),
        sa.or_(*(schema.run_queue.c.state == state for state in runqueue.ACTIVE_STATES)),
    )
    .order_by(schema.run_queue.c.requested_at)
)


def _workflow_view(store: Store, workflow_id: str) -> dict[str, Any] | None:
    with store.read() as conn:  # one snapshot of the three
        row = conn.execute(_WORKFLOW, {"id": workflow_id}).first()
        if row is None:
            return None
        task_rows = conn.execute(_TASKS, {"id": workflow_id}).all()
        queue_rows = conn.execute(_ACTIVE_QUEUE, {"id": workflow_id}).mappings().all()
    active = [runqueue.QueuedRun.model_validate(_utc_row(item)).model_dump() for item in queue_rows]
    workflow = _LEAN_WORKFLOWS.row(row) | {"tasks": [_LEAN_TASKS.row(t) for t in task_rows]}
    return {"workflow": workflow, "queue": active}


def campaign_delivery_orchestrations(store: Store, campaign: str) -> list[str]:
    """The (derived) orchestration names of the campaign's delivery workflows in the store: each is named
    `CAMPAIGN.GROUP.DESTINATION[.DAY]` (`app.campaign_deliveries`)."""
    column = schema.workflows.c.orchestration
    query = sa.select(column).distinct().where(column.startswith(f"{campaign}.", autoescape=True))
    with store.read() as conn:
        return [str(name) for name in conn.execute(query).scalars()]
