"""Use-cases around runs: start a workflow for an orchestration, preview it (`--plan`), and continue a failed
workflow (`retry`, `resolve`, `restart`). The CLI and the web call these; they stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsync.audiences.audience import MIN_USABLE_SIZE, audience_status
from ttsync.audiences.plan import SyncMode, connect, plan_audience
from ttsync.audiences.prepare import prepare_to_parquet
from ttsync.notify import deliver_pending
from ttsync.services.audience_sync import AUDIENCE_TASKS, AudienceRun, Reporter, RunOptions
from ttsync.sources import open_source
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import TaskSpec, WorkflowFailedError, reset_for_restart, run_workflow
from ttsync.workflows.resolutions import resolution_for
from ttsync.workspace.errors import ConfigError
from ttsync.workspace.layout import Workspace
from ttsync.workspace.models import ResolvedAudienceSettings, effective_settings


@dataclass
class RunOutcome:
    """The stored workflow of a run, and whether it succeeded."""

    workflow: WorkflowRecord
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`: the workflow with its tasks, plus the resolution when it failed."""
        data: dict[str, Any] = self.workflow.model_dump(mode="json")
        data["ok"] = self.ok
        if not self.ok:
            error = self.workflow.error or {}
            data["resolution"] = resolution_for(error.get("resolution")).to_dict()
        return data


def build_run(
    workspace: Workspace,
    store: Store,
    orchestration_name: str,
    *,
    options: RunOptions | None = None,
    reporter: Reporter | None = None,
) -> AudienceRun:
    """Load an orchestration with its destination, template, credential and source; merge the settings."""
    orchestration = repos.get_orchestration(store, orchestration_name)
    destination = repos.get_destination(store, orchestration.destination)
    template = repos.get_template(store, orchestration.template) if orchestration.template else None
    credential = repos.get_credential(store, destination.credential)
    source = repos.get_source(store, orchestration.source)
    settings = effective_settings(destination, template, orchestration)
    if not isinstance(settings, ResolvedAudienceSettings):
        raise ConfigError(
            f"orchestration {orchestration_name!r} sends offline events; offline-event runs are not wired "
            "into `ttsync run` yet"
        )
    if settings.delivery != "partner":
        raise ConfigError(
            f"destination {destination.name!r} uses delivery {settings.delivery!r}; this version of ttsync "
            "delivers audiences through the partner segment API only: set `delivery: partner`"
        )
    return AudienceRun(
        store=store,
        root=workspace.root,
        state_dir=workspace.state_dir,
        orchestration=orchestration,
        destination=destination,
        template=template,
        credential=credential,
        source=source,
        settings=settings,
        options=options or RunOptions(),
        reporter=reporter or Reporter(),
    )


def start_run(run: AudienceRun) -> RunOutcome:
    """Create a workflow for the orchestration and run it to the end (or to its first failure)."""
    workflow = repos.create_workflow(run.store, run.orchestration.name, "audience", AUDIENCE_TASKS)
    return _execute(run, workflow.id, run.tasks(), start_at=None)


def continue_run(run: AudienceRun, workflow_id: str, action: str, task: str | None = None) -> RunOutcome:
    """`retry` (the failed task, or `task`), `resolve` (re-check configuration, then continue from the
    failed task), or `restart` (from the first task, checkpoints cleared)."""
    workflow = repos.get_workflow(run.store, workflow_id)
    if workflow.state == "succeeded" and action != "restart":
        return RunOutcome(workflow, ok=True)
    if action == "restart":
        reset_for_restart(run.store, workflow)
        return _execute(run, workflow_id, run.tasks(), start_at=None)
    if action == "resolve":
        # The configuration was reloaded by `build_run` (and validated there); check the query again too.
        start = task or _failed_task(workflow)
    elif action == "retry":
        start = task or _failed_task(workflow)
    else:
        raise ValueError(f"unknown action {action!r}: use retry, resolve or restart")
    return _execute(run, workflow_id, run.tasks(), start_at=start)


def _failed_task(workflow: WorkflowRecord) -> str | None:
    for task in workflow.tasks:
        if task.state != "succeeded":
            return task.name
    return None


def _execute(run: AudienceRun, workflow_id: str, specs: list[TaskSpec], start_at: str | None) -> RunOutcome:
    try:
        workflow = asyncio.run(run_workflow(run.store, workflow_id, specs, start_at=start_at))
    except WorkflowFailedError as failed:
        _post_webhooks(run.store)
        return RunOutcome(failed.workflow, ok=False)
    return RunOutcome(workflow, ok=True)


def _post_webhooks(store: Store) -> None:
    """Post the failure's notification to $TTSYNC_WEBHOOK_URL when set; a webhook problem never hides the
    workflow's own outcome (delivery state is recorded on the notification)."""
    with contextlib.suppress(Exception):  # recorded per notification by deliver_pending
        deliver_pending(store)


def preview_run(run: AudienceRun) -> dict[str, Any]:
    """What a run would do, sending nothing and changing nothing: adds, removes, rejects by reason, the
    match-quality report and warnings. Reads the stored audience's status from TikTok when it can."""
    work = Path(tempfile.mkdtemp(prefix="ttsync-plan-"))
    try:
        with open_source(run.source, run.root) as source:
            columns = source.columns(run.orchestration.query)
            specs = run.column_specs(columns)
            run.reporter.stage("prepare")
            prepared = prepare_to_parquet(
                source.stream(run.orchestration.query, batch_rows=run.options.read_batch_rows),
                specs=specs,
                key_column=run.orchestration.key_column,
                out_dir=work / "prepared",
                progress=lambda n: run.reporter.advance("prepare", n),
            )
        warnings = list(run.settings.warnings())
        states = {
            s.advertiser_id: s
            for s in repos.get_audience_states(run.store, run.destination.name, run.orchestration.name)
        }
        stored = states.get(run.primary_advertiser)
        snapshot = None
        audience: dict[str, Any] = {"audience_id": None, "exists": False}
        if stored is not None and SyncMode(run.settings.mode) is not SyncMode.CREATE:
            audience = {"audience_id": stored.audience_id, "exists": None}
            try:
                status = asyncio.run(_status(run, stored.audience_id))
            except Exception as exc:  # the plan still shows the diff; the run itself will report the error
                warnings.append(
                    f"could not check audience {stored.audience_id} in TikTok: {type(exc).__name__}"
                )
                snapshot = run.snapshot_file(stored.audience_id)
            else:
                audience = {
                    "audience_id": stored.audience_id,
                    "exists": status.usable,
                    "tiktok_size": status.cover_num,
                }
                if status.usable:
                    snapshot = run.snapshot_file(stored.audience_id)
                else:
                    warnings.append(
                        f"audience {stored.audience_id} is gone from TikTok: the run will create a new one and "
                        "upload everyone"
                    )
        con = connect(work / "plan", memory_limit=run.options.duckdb_memory_limit)
        try:
            plan = plan_audience(
                con,
                prepared_glob=str(prepared.ids_path),
                snapshot=snapshot,
                id_schemas=run.id_schemas(specs),
                mode=SyncMode(run.settings.mode),
                work_dir=work / "plan",
            )
            rejects = con.execute(
                f"SELECT reason, count(*) FROM read_parquet('{prepared.rejects_path}') GROUP BY reason "
                "ORDER BY 2 DESC"
            ).fetchall()
        finally:
            con.close()
        if plan.remove_share > run.settings.remove_guard:
            warnings.append(
                f"the run would remove {plan.remove_share:.0%} of the audience, above the remove guard of "
                f"{run.settings.remove_guard:.0%}: it will stop before sending"
            )
        if plan.current_people < MIN_USABLE_SIZE:
            warnings.append(
                f"only {plan.current_people:,} people: TikTok needs at least {MIN_USABLE_SIZE:,} before an ad "
                "group can use the audience"
            )
        return {
            "orchestration": run.orchestration.name,
            "destination": run.destination.name,
            "audience_name": run.settings.audience_name,
            "advertiser_ids": run.settings.advertiser_ids,
            "audience": audience,
            "rows_read": prepared.rows_read,
            "plan": plan.to_dict(),
            "rejected_by_reason": {reason: int(n) for reason, n in rejects},
            "match_report": prepared.report.to_dict(),
            "warnings": warnings,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _status(run: AudienceRun, audience_id: str) -> Any:
    async with run.client() as client:
        return await audience_status(client, run.primary_advertiser, audience_id)
