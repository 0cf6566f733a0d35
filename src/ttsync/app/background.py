"""Runs in the background: queue a run (the server's API and scheduler), execute a queued run (a worker
process), cancel one. The queue lives in the store (`store.runqueue`), so queued runs survive a restart.

A campaign run is one queue row too (`enqueue_campaign`): its worker runs `app.campaigns.run_campaign`, each
delivery an ordinary workflow; a cancel stops it at the next batch boundary (deliveries not started yet are
not started). Its deliveries' workflows are found with `campaign_run_workflows`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from ttsync.app.audit import record
from ttsync.app.campaign_deliveries import deliveries, orchestration_named
from ttsync.app.campaigns import run_campaign
from ttsync.app.runs import build_continue_run, build_run, continue_run, start_run
from ttsync.app.workspace.layout import Workspace
from ttsync.errors import NotFoundError, ResolvableError, RunCancelledError, RunRefusedError
from ttsync.redact import redact_error
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.leases import get_lease, is_live, lease_timeout, orchestration_resource, pid_alive
from ttsync.store.records import WorkflowRecord
from ttsync.store.rows import utc_now
from ttsync.store.runqueue import QueuedRun, RunAction

log = logging.getLogger(__name__)

STILL_RUNNING = "skipped: still running"


def orchestration_active(store: Store, orchestration: str) -> bool:
    """Whether a run of the orchestration is queued, claimed, or holds its lease (a CLI run counts too). A
    claimed run whose worker died is not: it is marked lost first."""
    reclaim_lost(store)
    if runqueue.active_for(store, orchestration=orchestration):
        return True
    lease = get_lease(store, orchestration_resource(orchestration))
    return lease is not None and is_live(lease, timeout=lease_timeout())


def enqueue(
    store: Store,
    orchestration: str,
    action: RunAction,
    *,
    actor: str,
    origin: str = "api",
    workflow_id: str | None = None,
) -> QueuedRun:
    """Queue a run (`action="run"`, a new workflow) or a retry/resolve/restart of `workflow_id`.

    Refused (`RunRefusedError`, resolution `workflow_running`) while a run of the orchestration is active."""
    if action != "run" and workflow_id is None:
        raise ValueError(f"{action} needs the workflow id")
    # NotFoundError for an unknown name; a retry may name a campaign delivery (derived, not stored).
    if action == "run":
        repos.get_orchestration(store, orchestration)
    else:
        orchestration_named(store, orchestration)
    # (a row whose worker died does not block the retry of its workflow: `orchestration_active` reclaims it)
    if orchestration_active(store, orchestration):
        raise RunRefusedError(
            f"refused: a run of {orchestration} is queued or running; wait for it to finish",
            resolution_key="workflow_running",
        )
    item = QueuedRun(
        id=uuid.uuid4().hex,
        orchestration=orchestration,
        action=action,
        workflow_id=workflow_id or uuid.uuid4().hex,
        requested_by=actor,
        origin="schedule" if origin == "schedule" else "api",
        state="queued",
        requested_at=utc_now(),
    )
    runqueue.enqueue(store, item)
    record(
        store,
        actor,
        f"run.{action}",
        f"orchestration:{orchestration}",
        {"workflow_id": item.workflow_id, "origin": item.origin},
    )
    return item


def cancel(store: Store, workflow_id: str, *, actor: str) -> list[QueuedRun]:
    """Stop a workflow's run at its next batch boundary (a queued one never starts); it stays retryable."""
    active = runqueue.active_for(store, workflow_id=workflow_id)
    if not active:
        raise ValueError(f"workflow {workflow_id} has no queued or running run to cancel")
    left = runqueue.request_cancel(store, workflow_id)
    record(store, actor, "run.cancel", f"workflow:{workflow_id}", {})
    return left


def campaign_active(store: Store, name: str, day: date) -> bool:
    """Whether a run of the campaign is queued or running, or a run of one of its deliveries is (queued
    or running in the server, or holding its lease: a CLI run counts too)."""
    reclaim_lost(store)
    if runqueue.active_for(store, orchestration=name, kind="campaign"):
        return True
    prefix = name + "."  # a delivery's derived name: a retry of any delivery, whatever its day
    if any(
        r.kind == "orchestration" and r.orchestration.startswith(prefix) for r in runqueue.active_for(store)
    ):
        return True
    for delivery in deliveries(store, repos.get_campaign(store, name), day):
        lease = get_lease(store, orchestration_resource(delivery.orchestration.name))
        if lease is not None and is_live(lease, timeout=lease_timeout()):
            return True
    return False


def enqueue_campaign(store: Store, name: str, day: date, *, actor: str, origin: str = "api") -> QueuedRun:
    """Queue a run of the campaign `name` as of `day` (its launch and end dates are checked against it).

    Refused (`RunRefusedError`, resolution `workflow_running`) while a run of it or of a delivery is active."""
    repos.get_campaign(store, name)  # NotFoundError for an unknown name
    if campaign_active(store, name, day):
        raise RunRefusedError(
            f"refused: a run of campaign {name} (or of one of its deliveries) is queued or running; wait for "
            "it to finish",
            resolution_key="workflow_running",
        )
    item = QueuedRun(
        id=uuid.uuid4().hex,
        kind="campaign",
        orchestration=name,
        action="run",
        workflow_id=uuid.uuid4().hex,  # the campaign run's id (each delivery gets a workflow of its own)
        requested_by=actor,
        origin="schedule" if origin == "schedule" else "api",
        state="queued",
        requested_at=utc_now(),
        run_day=day,
    )
    runqueue.enqueue(store, item)
    record(
        store,
        actor,
        "campaign.run",
        f"campaign:{name}",
        {"run_id": item.workflow_id, "origin": item.origin, "day": day.isoformat()},
    )
    return item


def campaign_run(store: Store, name: str, run_id: str) -> QueuedRun:
    """The queue row of a campaign run (`run_id`: its id or its queue id); `NotFoundError` otherwise."""
    rows = runqueue.for_workflow(store, run_id) or [runqueue.get_queued(store, run_id)]
    item = rows[-1]
    if item.kind != "campaign" or item.orchestration != name:
        raise NotFoundError("campaign run", run_id)
    return item


def campaign_outcome(item: QueuedRun) -> dict[str, Any] | None:
    """What a finished campaign run did (`CampaignOutcome.to_dict`), None while it has not finished."""
    if item.state != "done" or not item.detail:
        return None
    try:
        outcome: dict[str, Any] = json.loads(item.detail)
    except ValueError:
        return None
    return outcome


def campaign_run_workflows(store: Store, item: QueuedRun) -> list[WorkflowRecord]:
    """The workflows of a campaign run's deliveries: those it recorded when it finished, else (running, or
    cancelled) those of its deliveries started since the run began."""
    outcome = campaign_outcome(item)
    if outcome is not None:
        ids = [d["workflow_id"] for d in outcome["deliveries"]]
        found = []
        for workflow_id in ids:
            with contextlib.suppress(NotFoundError):  # pruned since
                found.append(repos.get_workflow(store, workflow_id))
        return found
    if item.started_at is None or item.run_day is None:
        return []
    names = [
        d.orchestration.name
        for d in deliveries(store, repos.get_campaign(store, item.orchestration), item.run_day)
    ]
    found = []
    for name in names:
        for workflow in repos.page_workflows(store, orchestration=name, limit=5):
            if workflow.created_at >= item.started_at and (
                item.finished_at is None or workflow.created_at <= item.finished_at
            ):
                found.append(workflow)
    return sorted(found, key=lambda w: w.created_at)


def claim(store: Store) -> QueuedRun | None:
    """Claim the oldest queued run for this process."""
    return runqueue.claim_next(store, os.getpid(), socket.gethostname())


def _refusal(item: QueuedRun, exc: Exception) -> str:
    """What a queue row records when its run raised before it could end: still running, a configuration
    problem found before the workflow existed (redacted), or for a bug the type only (its text may quote
    data). Called in the `except` block, so a bug's traceback is logged."""
    if isinstance(exc, RunRefusedError):
        return STILL_RUNNING if exc.resolution_key == "workflow_running" else str(exc)
    if isinstance(exc, ResolvableError | ValueError | OSError):
        return redact_error(exc)
    log.exception("queued %s run %s failed unexpectedly", item.kind, item.id)
    return f"unexpected {type(exc).__name__}"


def execute(workspace: Workspace, store: Store, item: QueuedRun) -> None:
    """Run a claimed queue row to its end in this (worker) process and record how it ended."""

    def stop() -> None:
        if runqueue.cancel_requested(store, item.id):
            raise RunCancelledError(
                f"cancelled by a user; workflow {item.workflow_id} stopped at a batch boundary"
            )

    if item.kind == "campaign":
        _execute_campaign(workspace, store, item, stop)
        return
    try:
        if item.action == "run":
            run = build_run(workspace, store, item.orchestration)
            outcome = start_run(run, workflow_id=item.workflow_id, stop=stop)
        else:  # a campaign delivery's workflow too (its orchestration is derived, not stored)
            run = build_continue_run(workspace, store, item.orchestration)
            outcome = continue_run(run, item.workflow_id, item.action, stop=stop)
    except Exception as exc:  # the worker stays alive whatever the run raised
        runqueue.finish(store, item.id, "refused", _refusal(item, exc))
        return
    state = outcome.workflow.state
    cancelled = (outcome.workflow.error or {}).get("resolution") == "run_cancelled"
    runqueue.finish(store, item.id, "cancelled" if cancelled else "done", state)


def _execute_campaign(workspace: Workspace, store: Store, item: QueuedRun, stop: Callable[[], None]) -> None:
    """Run a claimed campaign run; its outcome (status, each delivery's workflow id) is the row's detail."""
    try:
        outcome = run_campaign(workspace, store, item.orchestration, today=item.run_day, stop=stop)
    except RunCancelledError as exc:
        runqueue.finish(store, item.id, "cancelled", str(exc))
        return
    except Exception as exc:  # the worker stays alive whatever the run raised
        runqueue.finish(store, item.id, "refused", _refusal(item, exc))
        return
    runqueue.finish(store, item.id, "done", json.dumps(outcome.to_dict()))


def reclaim_lost(store: Store) -> list[str]:
    """Queue rows claimed by a worker process that died on this host: marked `lost` (their workflow reads
    `interrupted` and is retryable). Returns their ids."""
    lost: list[str] = []
    for item in runqueue.running_rows(store):
        if item.holder_host != socket.gethostname() or item.holder_pid is None:
            continue
        if not pid_alive(item.holder_pid):
            runqueue.finish(store, item.id, "lost", "the worker process died; the workflow is retryable")
            lost.append(item.id)
    return lost
