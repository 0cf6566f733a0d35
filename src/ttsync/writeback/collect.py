"""Build the write-back rows of one workflow from its stored record and its run folder's Parquet files.

Nothing here reads the warehouse or TikTok: the workflow record has the counts, and the run folder has the
per-row outcomes in hashed form (row keys keyed-hashed where they look like identifiers, see
`ttsync.identity.rowkeys`; digests and reason codes, never a raw value). Row outcomes of an audience:

    sent         the identifier was added to the audience by this workflow (TikTok confirmed it)
    in_audience  the identifier was already in the audience (sent by an earlier workflow), nothing to send
    deferred     planned but not confirmed yet: the workflow stopped before its upload finished
    rejected     the value failed the identity rules; `reason` says why (docs/identity.md)
    excluded     left out on purpose: a forget request or suppression list (`reason` forgotten / suppressed,
                 from `prepared/excluded.parquet`), or a campaign's exclusion segment (`campaign_row_outcomes`)
    holdout      a campaign's control group: sent nowhere, recorded for measurement (`campaign_row_outcomes`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.sqltext import sql_literal
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import workflow_warnings

# Event outcomes as the run folder records them -> as the write-back tables name them.
EVENT_STATUS = {
    "sent": "accepted",
    "duplicate_skipped": "duplicate",
    "rejected": "rejected",
    "planned": "planned",
}
DELIVERED_TASK = "upload"  # an audience's adds are confirmed once this task succeeded
# Written by the privacy step (`ttsync.app.privacy`): row key, id schema and reason of each identifier it
# removed from a run's prepared files, relative to the run folder.
EXCLUDED_FILE = "prepared/excluded.parquet"

RUNS_SCHEMA = pa.schema(
    [
        ("workflow_id", pa.string()), ("orchestration", pa.string()), ("campaign", pa.string()),
        ("kind", pa.string()), ("status", pa.string()), ("resolution", pa.string()),
        ("failed_task", pa.string()), ("error_message", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")), ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("duration_seconds", pa.float64()),
        ("rows_read", pa.int64()), ("warnings", pa.int64()), ("task_counts", pa.string()),
        ("written_at", pa.timestamp("us", tz="UTC")), ("ttsync_version", pa.string()),
    ]
)  # fmt: skip
AUDIENCE_SCHEMA = pa.schema(
    [
        ("workflow_id", pa.string()), ("orchestration", pa.string()), ("destination", pa.string()),
        ("advertiser_id", pa.string()), ("shared_advertiser_ids", pa.string()), ("audience_id", pa.string()),
        ("audience_name", pa.string()), ("mode", pa.string()), ("delivery", pa.string()),
        ("size_before", pa.int64()), ("size_after", pa.int64()), ("people", pa.int64()),
        ("adds", pa.int64()), ("removes", pa.int64()), ("added_confirmed", pa.int64()),
        ("removed_confirmed", pa.int64()), ("deferred", pa.int64()), ("rejected", pa.int64()),
        ("rejected_by_reason", pa.string()), ("tiktok_size", pa.int64()), ("is_valid", pa.bool_()),
        ("match_rate", pa.float64()),
    ]
)  # fmt: skip


@dataclass
class AudienceFacts:
    """What the write-back needs of an audience run besides its record."""

    destination: str
    advertiser_ids: list[str]
    audience_name: str
    mode: str
    delivery: str
    column_types: dict[str, str] = field(default_factory=dict)  # identifier column -> EMAIL/PHONE/IDFA/AAID


def runs_table(workflow: WorkflowRecord, status: str, written_at: datetime, version: str) -> pa.Table:
    """The workflow's one row of `ttsync_runs` (`status`: the state it ends in)."""
    error = workflow.error or {}
    tasks = {
        task.name: {
            "state": task.state,
            "attempts": task.attempts,
            "counts": {k: v for k, v in task.counts.items() if k not in ("match_report", "warnings")},
        }
        for task in workflow.tasks
    }
    finished = workflow.finished_at or (written_at if status != "running" else None)
    duration = (finished - workflow.started_at).total_seconds() if finished and workflow.started_at else None
    rows_read = next(
        (
            t.counts.get("rows_read", t.counts.get("rows"))
            for t in workflow.tasks
            if t.name in ("prepare", "deliver")
        ),
        None,
    )
    row = {
        "workflow_id": workflow.id,
        "orchestration": workflow.orchestration,
        "campaign": workflow.checkpoint.get("campaign"),
        "kind": workflow.kind,
        "status": status,
        "resolution": error.get("resolution") if status == "failed" else None,
        "failed_task": error.get("task") if status == "failed" else None,
        "error_message": error.get("message") if status == "failed" else None,
        "created_at": workflow.created_at,
        "started_at": workflow.started_at,
        "finished_at": finished,
        "duration_seconds": duration,
        "rows_read": rows_read if isinstance(rows_read, int) else None,
        "warnings": len(workflow_warnings(workflow)),
        "task_counts": json.dumps(tasks, sort_keys=True, default=str),
        "written_at": written_at,
        "ttsync_version": version,
    }
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)


def audience_table(workflow: WorkflowRecord, facts: AudienceFacts, rejected: dict[str, int]) -> pa.Table:
    """The workflow's row of `ttsync_audience_syncs` (one audience, owned by the first advertiser)."""
    counts = {task.name: task.counts for task in workflow.tasks}
    states = {task.name: task.state for task in workflow.tasks}
    plan, upload, back = counts.get("plan", {}), counts.get("upload", {}), counts.get("read_back", {})
    adds, removes = _int(plan.get("add_ids")), _int(plan.get("remove_ids"))
    added, removed = _int(upload.get("added_ids")), _int(upload.get("removed_ids"))
    deferred = None
    if adds is not None and removes is not None:
        confirmed = (
            (added or 0) + (removed or 0) if states.get(DELIVERED_TASK) != "succeeded" else adds + removes
        )
        deferred = max(adds + removes - confirmed, 0)
    audience_id = (
        back.get("audience_id")
        or upload.get("audience_id")
        or counts.get("verify_audience", {}).get("audience_id")
    )
    row = {
        "workflow_id": workflow.id,
        "orchestration": workflow.orchestration,
        "destination": facts.destination,
        "advertiser_id": facts.advertiser_ids[0] if facts.advertiser_ids else None,
        "shared_advertiser_ids": ",".join(facts.advertiser_ids[1:]) or None,
        "audience_id": audience_id,
        "audience_name": facts.audience_name,
        "mode": facts.mode,
        "delivery": facts.delivery,
        "size_before": _int(plan.get("previous_ids")),
        "size_after": _int(plan.get("current_ids")),
        "people": _int(plan.get("current_people")),
        "adds": adds,
        "removes": removes,
        "added_confirmed": added if states.get(DELIVERED_TASK) != "succeeded" else adds,
        "removed_confirmed": removed if states.get(DELIVERED_TASK) != "succeeded" else removes,
        "deferred": deferred,
        "rejected": sum(rejected.values()),
        "rejected_by_reason": json.dumps(rejected, sort_keys=True),
        "tiktok_size": _int(back.get("tiktok_size")),
        "is_valid": back.get("is_valid"),
        "match_rate": back.get("match_rate"),
    }
    return pa.Table.from_pylist([row], schema=AUDIENCE_SCHEMA)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def audience_row_outcomes(
    con: duckdb.DuckDBPyConnection, workflow: WorkflowRecord, run_dir: Path, facts: AudienceFacts
) -> pa.Table:
    """`ttsync_row_outcomes` rows of an audience workflow: one per (row key, identifier), plus one per
    rejected value. Read from the run folder with DuckDB (`con`: an in-memory connection)."""
    ids, rejects = run_dir / "prepared" / "ids.parquet", run_dir / "prepared" / "rejects.parquet"
    owners = run_dir / "plan" / "owners.parquet"
    states = {task.name: task.state for task in workflow.tasks}
    delivered = states.get(DELIVERED_TASK) == "succeeded"
    wf, orch = sql_literal(workflow.id), sql_literal(workflow.orchestration)
    parts = []
    if ids.is_file():
        type_sql = "split_part(i.id_schema, '_', 1)"
        if owners.is_file() and states.get("plan") == "succeeded":
            status = (
                f"CASE WHEN o.k1 IS NULL THEN 'in_audience' WHEN {'true' if delivered else 'false'} "
                "THEN 'sent' ELSE 'deferred' END"
            )
            source = (
                f"(SELECT DISTINCT row_key, id_schema, k1, k2, k3, k4 FROM read_parquet({sql_literal(ids)})) i "
                f"LEFT JOIN (SELECT DISTINCT id_schema, k1, k2, k3, k4 FROM read_parquet({sql_literal(owners)})) o "
                "USING (id_schema, k1, k2, k3, k4)"
            )
        else:  # stopped before a plan existed: everything is still to be decided
            status = "'deferred'"
            source = f"(SELECT DISTINCT row_key, id_schema, k1 FROM read_parquet({sql_literal(ids)})) i"
        parts.append(
            f"SELECT {wf} AS workflow_id, {orch} AS orchestration, i.row_key, {type_sql} AS identifier_type, "
            f"NULL::VARCHAR AS identifier_column, {status} AS status, NULL::VARCHAR AS reason FROM {source}"
        )
    if rejects.is_file():
        con.register(
            "ttsync_column_types",
            pa.table({"col": list(facts.column_types), "typ": list(facts.column_types.values())},
                     schema=pa.schema([("col", pa.string()), ("typ", pa.string())])),
        )  # fmt: skip
        parts.append(
            f"SELECT {wf}, {orch}, r.row_key, t.typ, r.column, 'rejected', r.reason "
            f"FROM read_parquet({sql_literal(rejects)}) r LEFT JOIN ttsync_column_types t ON t.col = r.column"
        )
    excluded = run_dir / EXCLUDED_FILE
    if excluded.is_file():
        parts.append(
            f"SELECT DISTINCT {wf}, {orch}, row_key, split_part(id_schema, '_', 1), NULL::VARCHAR, 'excluded', "
            f"reason FROM read_parquet({sql_literal(excluded)})"
        )
    if not parts:
        return _empty_outcomes()
    return con.sql(" UNION ALL ".join(parts)).to_arrow_table()


def rejected_by_reason(con: duckdb.DuckDBPyConnection, run_dir: Path) -> dict[str, int]:
    """Rejected values of an audience run, by reason code."""
    rejects = run_dir / "prepared" / "rejects.parquet"
    if not rejects.is_file():
        return {}
    rows = con.sql(
        f"SELECT reason, count(*) FROM read_parquet({sql_literal(rejects)}) GROUP BY reason"
    ).fetchall()
    return {str(reason): int(n) for reason, n in rows}


def event_outcomes(con: duckdb.DuckDBPyConnection, workflow: WorkflowRecord, run_dir: Path) -> pa.Table:
    """`ttsync_event_outcomes` rows: one per warehouse row of the events query (rows of one event share its
    outcome)."""
    from ttsync.events.outcomes import OUTCOMES_FILE

    path = run_dir / OUTCOMES_FILE
    if not path.is_file():
        return pa.table(
            {name: pa.array([], pa.string()) for name in
             ("workflow_id", "orchestration", "row_key", "status", "reason", "message", "event", "event_id")}
        )  # fmt: skip
    mapping = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in EVENT_STATUS.items())
    # Run folders of older versions have no event columns.
    has_event = "event_id" in pq.read_schema(path).names
    event = "event, event_id" if has_event else "NULL::VARCHAR AS event, NULL::VARCHAR AS event_id"
    return con.sql(
        f"SELECT {sql_literal(workflow.id)} AS workflow_id, {sql_literal(workflow.orchestration)} AS orchestration, "
        f"row_key, CASE outcome {mapping} ELSE outcome END AS status, reason, message, {event} "
        f"FROM read_parquet({sql_literal(path)})"
    ).to_arrow_table()


def _empty_outcomes() -> pa.Table:
    names = (
        "workflow_id",
        "orchestration",
        "row_key",
        "identifier_type",
        "identifier_column",
        "status",
        "reason",
    )
    return pa.table({name: pa.array([], pa.string()) for name in names})
