"""The `writeback` workflow task and the hooks `ttsync.app.runs` calls.

Write-back runs last, after `commit` / `read_back` (or `deliver`), as a task of its own. It never fails the
sync: a failure is recorded as a serious warning with the resolution `writeback_failed`, so the workflow ends
`succeeded_with_warnings`, and `ttsync workflows retry ID` runs only the write-back again. A workflow that
failed earlier is written too (status `failed`, its resolution key), best effort, from `after_failure`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from ttsync import __version__
from ttsync.config.writeback import TableName, WritebackTarget, enabled_for
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.redact import redact_text
from ttsync.store import repos
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import TaskContext, TaskSpec, workflow_warnings
from ttsync.writeback.collect import (
    AudienceFacts,
    audience_row_outcomes,
    audience_table,
    event_outcomes,
    rejected_by_reason,
    runs_table,
)
from ttsync.writeback.resolve import resolve_target
from ttsync.writeback.stored import load_writeback
from ttsync.writeback.target import open_target
from ttsync.writeback.writer import WorkflowRows, write_rows

TASK_NAME = "writeback"
RESOLUTION = "writeback_failed"


def target_for(run: OrchestrationRun) -> WritebackTarget | None:
    """The orchestration's write-back target, or None when write-back is off."""
    config = load_writeback(run.state_dir)
    return resolve_target(config, run.orchestration.name, run.source, run.root)


def with_writeback(
    run: OrchestrationRun, specs: list[TaskSpec], workflow: WorkflowRecord | None = None
) -> list[TaskSpec]:
    """`specs` plus the write-back task: for a new workflow when write-back is on, for an existing one when
    it was created with the task (so its stored task list and the specs always agree)."""
    if workflow is not None:
        wanted = any(task.name == TASK_NAME for task in workflow.tasks)
    else:
        wanted = enabled_for(load_writeback(run.state_dir), run.orchestration.name)
    if not wanted:
        return specs
    return [*specs, TaskSpec(TASK_NAME, lambda ctx: _task(run, ctx))]


def wants_rewrite(workflow: WorkflowRecord, task: str | None = None) -> bool:
    """Whether `retry` of a finished workflow runs its write-back again: it failed, or `task` names it."""
    found = next((t for t in workflow.tasks if t.name == TASK_NAME), None)
    return found is not None and (found.counts.get("written") is False or task == TASK_NAME)


async def _task(run: OrchestrationRun, ctx: TaskContext) -> dict[str, Any]:
    workflow = repos.get_workflow(ctx.store, ctx.workflow_id)
    serious = any(w.get("serious") for w in workflow_warnings(workflow) if w.get("task") != TASK_NAME)
    status = "succeeded_with_warnings" if serious else "succeeded"
    try:
        target = target_for(run)
        if target is None:
            return {"written": None, "note": "write-back is off for this orchestration"}
        # DuckDB and the database drivers block: keep the event loop free.
        written = await asyncio.to_thread(write_workflow, run, workflow, target, status)
    except Exception as exc:  # write-back must never fail the sync: it becomes a warning with its resolution
        message = redact_text(f"{type(exc).__name__}: {exc}")
        ctx.warn(
            f"write-back failed ({message}); the sync itself succeeded. Fix the write-back target, then run "
            f"`ttsync workflows retry {ctx.workflow_id}` to write this workflow's results again",
            serious=True,
            resolution=RESOLUTION,
        )
        return {"written": False}
    return {"written": True, "target": target.described, "schema": target.schema, "rows": written}


def after_failure(run: OrchestrationRun, workflow: WorkflowRecord) -> None:
    """Write a failed workflow (status `failed`, its resolution key), best effort: a write-back problem here
    becomes a notification, never an error on top of the workflow's own."""
    try:
        target = target_for(run)
        if target is None:
            return
        write_workflow(run, workflow, target, "failed")
    except Exception as exc:
        with contextlib.suppress(Exception):
            repos.add_notification(
                run.store,
                workflow_id=workflow.id,
                severity="warning",
                title=f"{workflow.orchestration}: write-back failed",
                message=redact_text(
                    f"The failed workflow could not be written back ({type(exc).__name__}: {exc}); it is "
                    f"written when `ttsync workflows retry {workflow.id}` completes."
                ),
                resolution=RESOLUTION,
            )


def write_workflow(
    run: OrchestrationRun, workflow: WorkflowRecord, target: WritebackTarget, status: str
) -> dict[str, int]:
    """Collect the workflow's rows from its record and run folder, and replace them in the target."""
    run_dir = run.run_dir(workflow.id)
    now = datetime.now(UTC)
    tables: dict[TableName, pa.Table] = {"ttsync_runs": runs_table(workflow, status, now, __version__)}
    con = duckdb.connect(config={"threads": 2})
    try:
        if isinstance(run, AudienceRun):
            facts = audience_facts(run, workflow)
            tables["ttsync_audience_syncs"] = audience_table(
                workflow, facts, rejected_by_reason(con, run_dir)
            )
            tables["ttsync_row_outcomes"] = audience_row_outcomes(con, workflow, run_dir, facts)
        else:
            tables["ttsync_event_outcomes"] = event_outcomes(con, workflow, run_dir)
    finally:
        con.close()
    superseded = tuple(
        w.id
        for w in repos.list_workflows(run.store, orchestration=workflow.orchestration)
        if w.state == "superseded" and (w.checkpoint or {}).get("superseded_by") == workflow.id
    )
    conn = open_target(target, run.root)
    try:
        return write_rows(conn, target, WorkflowRows(workflow.id, tables, superseded))
    finally:
        conn.close()


def audience_facts(run: AudienceRun, workflow: WorkflowRecord) -> AudienceFacts:
    """Settings of the audience run, and which identifier type each identifier column holds."""
    settings = run.settings
    columns: list[str] = next(
        (list(t.counts.get("identifier_columns") or []) for t in workflow.tasks if t.name == "query"), []
    )
    column_types: dict[str, str] = {}
    with contextlib.suppress(Exception):  # only labels rejected values: never worth failing the write-back
        column_types = {spec.column: spec.kind.upper() for spec in run.column_specs(columns)}
    return AudienceFacts(
        destination=run.destination.name,
        advertiser_ids=list(settings.advertiser_ids),
        audience_name=settings.audience_name,
        mode=settings.mode,
        delivery=settings.delivery,
        column_types=column_types,
    )
