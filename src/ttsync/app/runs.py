"""Use-cases around runs: start a workflow for an orchestration, preview it (`--plan`), and continue a failed
workflow (`retry`, `resolve`, `restart`). The CLI and the web call these; they stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ttsync.app.privacy import with_privacy
from ttsync.app.workspace.layout import Workspace
from ttsync.destinations.tiktok.client.retrylog import install_retry_logging as install_retry_logging
from ttsync.destinations.tiktok.oauth import Doctor
from ttsync.destinations.tiktok.pipelines import pipeline_for
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.destinations.tiktok.pipelines.base import Reporter as Reporter
from ttsync.destinations.tiktok.pipelines.base import RunOptions as RunOptions
from ttsync.destinations.tiktok.settings import effective_settings
from ttsync.errors import ConfigError, NotFoundError
from ttsync.notify import deliver_pending
from ttsync.redact import install_log_redaction
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.leases import LeaseKeeper, lease_timeout, orchestration_resource
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import (
    SUCCEEDED_STATES,
    TaskSpec,
    WorkflowFailedError,
    reset_for_restart,
    run_workflow,
    workflow_warnings,
)
from ttsync.workflows.ownership import check_continuable, hold, supersede_unfinished
from ttsync.workflows.resolutions import resolution_for
from ttsync.writeback import task as writeback

# Runs log through ttsync's loggers and stamina's retry messages: neither may carry a value a source quoted.
install_log_redaction()


@dataclass
class RunOutcome:
    """The stored workflow of a run, and whether it succeeded."""

    workflow: WorkflowRecord
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`: the workflow with its tasks, plus the resolution when it failed."""
        data: dict[str, Any] = self.workflow.model_dump(mode="json")
        data["ok"] = self.ok
        data["warnings"] = workflow_warnings(self.workflow)
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
    environ: Mapping[str, str] | None = None,
) -> OrchestrationRun:
    """Load an orchestration with its destination, template, credential and source; merge the settings.

    `environ`: where the run finds `$TTSYNC_SANDBOX_URL` and sources' `url_env` (default: this process's)."""
    orchestration = repos.get_orchestration(store, orchestration_name)
    destination = repos.get_destination(store, orchestration.destination)
    template = repos.get_template(store, orchestration.template) if orchestration.template else None
    credential = repos.get_credential(store, destination.credential)
    source = repos.get_source(store, orchestration.source)
    settings = effective_settings(destination, template, orchestration)
    common: dict[str, Any] = {
        "store": store,
        "root": workspace.root,
        "state_dir": workspace.state_dir,
        "orchestration": orchestration,
        "destination": destination,
        "template": template,
        "credential": credential,
        "source": source,
        "options": options or RunOptions(),
        "reporter": reporter or Reporter(),
        "environ": os.environ if environ is None else environ,
        "wrap_tasks": with_privacy,  # `run --plan` applies forget requests and suppression as a run does
    }
    return pipeline_for(settings, **common)


def build_continue_run(
    workspace: Workspace, store: Store, orchestration_name: str, *, reporter: Reporter | None = None
) -> OrchestrationRun:
    """The run that continues (retry, resolve, restart) a workflow of `orchestration_name`: a stored
    orchestration's, or a campaign delivery's (`CAMPAIGN.GROUP.DESTINATION`, derived on each campaign run and
    never stored). `NotFoundError` when it is neither."""
    # app.campaigns builds on this module (start_run), so it is imported here, not at the top.
    from ttsync.app.campaign_deliveries import delivery_run

    try:
        return build_run(workspace, store, orchestration_name, reporter=reporter)
    except NotFoundError as missing:
        if missing.kind != "orchestration" or missing.name != orchestration_name:
            raise
        run = delivery_run(workspace, store, orchestration_name, reporter=reporter)
        if run is None:
            raise
        return run


async def start(
    run: OrchestrationRun, *, workflow_id: str | None = None, stop: Callable[[], None] | None = None
) -> RunOutcome:
    """Create a workflow for the orchestration and run it to the end (or to its first failure).

    Refused (`WorkflowRunningError`) while another workflow of the orchestration runs; supersedes the
    unfinished ones (see `workflows.ownership`). The async use-case (a web handler awaits it); `start_run` is
    the same for synchronous callers. `workflow_id`: the id to create (the server names it when it queues the
    run); `stop`: called at every task and batch boundary, raises to stop there (the server's cancel)."""
    workflow_id = workflow_id or uuid.uuid4().hex
    # The workspace's forget requests and suppression lists apply to every audience run (app.privacy);
    # + the `writeback` task when write-back is on.
    specs = writeback.with_writeback(run, with_privacy(run, run.tasks()))
    with LeaseKeeper(run.store, workflow_id, timeout=lease_timeout()) as keeper:
        hold(keeper, orchestration_resource(run.orchestration.name))
        repos.create_workflow(
            run.store,
            run.orchestration.name,
            run.kind,
            tuple(spec.name for spec in specs),
            workflow_id=workflow_id,
        )
        supersede_unfinished(run.store, run.orchestration.name, workflow_id)
        return await _execute(run, workflow_id, specs, start_at=None, keeper=keeper, stop=stop)


def start_run(
    run: OrchestrationRun, *, workflow_id: str | None = None, stop: Callable[[], None] | None = None
) -> RunOutcome:
    """`start` for synchronous callers (the CLI, the quickstart, the server's workers)."""
    return asyncio.run(start(run, workflow_id=workflow_id, stop=stop))


async def continue_(
    run: OrchestrationRun,
    workflow_id: str,
    action: str,
    task: str | None = None,
    *,
    stop: Callable[[], None] | None = None,
) -> RunOutcome:
    """`retry` (the failed task, or `task`), `resolve` (re-check configuration, then continue from the
    failed task), or `restart` (from the first task, checkpoints cleared). Refused for a superseded workflow
    and while a workflow of the orchestration runs."""
    workflow = repos.get_workflow(run.store, workflow_id)
    check_continuable(workflow)
    # A finished sync whose write-back failed (or `--task writeback`): retry writes its results again.
    rewrite = (
        action == "retry" and workflow.state in SUCCEEDED_STATES and writeback.wants_rewrite(workflow, task)
    )
    if workflow.state in SUCCEEDED_STATES and action != "restart" and not rewrite:
        return RunOutcome(workflow, ok=True)
    if action not in ("retry", "resolve", "restart"):
        raise ValueError(f"unknown action {action!r}: use retry, resolve or restart")
    specs = writeback.with_writeback(run, with_privacy(run, run.tasks()), workflow)
    with LeaseKeeper(run.store, workflow_id, timeout=lease_timeout()) as keeper:
        hold(keeper, orchestration_resource(run.orchestration.name))
        # Read again under the lease: a run that finished meanwhile may have superseded it.
        workflow = repos.get_workflow(run.store, workflow_id)
        check_continuable(workflow)
        if action == "restart":
            reset_for_restart(run.store, workflow)
            return await _execute(run, workflow_id, specs, start_at=None, keeper=keeper, stop=stop)
        if action == "resolve":
            # The configuration was reloaded and validated by `build_run`; now re-check it against TikTok
            # (token, advertisers, write permission, event set) before continuing, so an unfixed cause is
            # named at once.
            recheck_destination(run)
        start = writeback.TASK_NAME if rewrite else (task or _failed_task(workflow))
        return await _execute(run, workflow_id, specs, start_at=start, keeper=keeper, stop=stop)


def continue_run(
    run: OrchestrationRun,
    workflow_id: str,
    action: str,
    task: str | None = None,
    *,
    stop: Callable[[], None] | None = None,
) -> RunOutcome:
    """`continue_` for synchronous callers."""
    return asyncio.run(continue_(run, workflow_id, action, task, stop=stop))


def recheck_destination(run: OrchestrationRun) -> None:
    """The destination's "test connection"; raises `ConfigError` listing what is still wrong."""
    report = Doctor(run.store).destination(run.destination.name)
    if report.ok:
        return
    lines = [f"{check.subject}: {check.detail} [{check.resolution}]" for check in report.problems]
    raise ConfigError("the configuration is not fixed yet:\n  " + "\n  ".join(lines))


def _failed_task(workflow: WorkflowRecord) -> str | None:
    for task in workflow.tasks:
        if task.state != "succeeded":
            return task.name
    return None


async def _execute(
    run: OrchestrationRun,
    workflow_id: str,
    specs: list[TaskSpec],
    start_at: str | None,
    keeper: LeaseKeeper,
    stop: Callable[[], None] | None = None,
) -> RunOutcome:
    run.leases = keeper

    def fence() -> None:
        keeper.check()
        if stop is not None:
            stop()

    try:
        workflow = await run_workflow(run.store, workflow_id, specs, start_at=start_at, fence=fence)
    except WorkflowFailedError as failed:
        writeback.after_failure(run, failed.workflow)  # best effort; never raises
        _post_webhooks(run.store)
        return RunOutcome(failed.workflow, ok=False)
    _post_webhooks(run.store)  # a `succeeded_with_warnings` workflow raised a warning notification
    return RunOutcome(workflow, ok=True)


def _post_webhooks(store: Store) -> None:
    """Post the run's notifications to $TTSYNC_WEBHOOK_URL when set; a webhook problem never hides the
    workflow's own outcome (delivery state is recorded on the notification)."""
    with contextlib.suppress(Exception):  # recorded per notification by deliver_pending
        deliver_pending(store)


def preview_run(run: OrchestrationRun) -> dict[str, Any]:
    """What a run would do, sending nothing and changing nothing (`ttsync run --plan`)."""
    return run.preview()
