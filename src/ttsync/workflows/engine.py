"""Run a workflow: ordered, named tasks with states, counts and checkpoints kept in the store.

A task is an async function of a `TaskContext`. It reads its own checkpoint (what an earlier attempt already
got TikTok to confirm), saves new checkpoints as it goes, and returns its counts. When a task raises, the
error is classified into the resolution catalog, the task and workflow are marked failed with that
resolution, and one notification is raised. `retry`/`resolve` run the workflow again from the failed task,
with every task's checkpoint intact; `restart` runs it from the first task with checkpoints cleared.

A task may record warnings (`TaskContext.warn`); they are stored with the task's counts, so they reach every
output (plain, piped, `--json`, `workflows show`). A *serious* warning (more rejected rows than
`max_reject_rate`, an audience too small to use) makes the workflow end `succeeded_with_warnings` and raises
one warning notification listing the run's warnings.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ttsync.errors import TaskOrderError
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import TaskRecord, WorkflowRecord, WorkflowState
from ttsync.workflows.crashpoints import crash_point
from ttsync.workflows.errors import classify_exception
from ttsync.workflows.resolutions import resolution_for

TaskFunction = Callable[["TaskContext"], Awaitable[dict[str, Any] | None]]

# Workflow states that mean "done, every task succeeded" (`ttsync` exits 0 for both).
SUCCEEDED_STATES = frozenset({"succeeded", "succeeded_with_warnings"})
WARNINGS_KEY = "warnings"  # task counts key holding the task's warnings


@dataclass(frozen=True)
class TaskSpec:
    """One named step of a workflow."""

    name: str
    run: TaskFunction
    # Whether the task runs in a dry run (`ttsync run --plan`): a task that only sends (an upload, a commit)
    # says False; one that runs says how it looks without changing anything by reading `ctx.dry_run`.
    in_dry_run: bool = True


@dataclass
class TaskContext:
    """What a running task may read and record."""

    store: Store
    workflow_id: str
    task_name: str
    checkpoint: dict[str, Any]
    shared: dict[str, Any] = field(default_factory=dict)  # in-memory values passed between tasks of one run
    warnings: list[dict[str, Any]] = field(default_factory=list)
    fence: Callable[[], None] | None = None  # raises when this process lost the workflow's lease
    # A dry run (`dry_run_workflow`): checkpoints and counts stay in `dry_results`, the store is not written,
    # and a task sends nothing and changes nothing.
    dry_run: bool = False
    dry_results: dict[str, DryRunTask] | None = None

    def warn(
        self, message: str, *, serious: bool = False, resolution: str | None = None, key: str | None = None
    ) -> None:
        """Record a warning of this task (stored with its counts). `serious`: the workflow ends
        `succeeded_with_warnings` and notifies; `resolution` names the catalog entry that explains it; `key`
        names the kind of warning for a dry run's caller (kept in dry runs only, never stored)."""
        warning: dict[str, Any] = {"message": message, "serious": serious, "resolution": resolution}
        if self.dry_run and key is not None:
            warning["key"] = key
        self.warnings.append(warning)

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Persist this task's checkpoint now (call after TikTok confirmed something)."""
        if self.dry_run:
            self.checkpoint = checkpoint
            return
        if self.fence is not None:
            self.fence()
        self.checkpoint = checkpoint
        repos.update_task(self.store, self.workflow_id, self.task_name, checkpoint=checkpoint)

    def save_counts(self, counts: dict[str, Any]) -> None:
        """Persist this task's counts so far (shown by `workflows show` while it runs)."""
        if self.dry_run:
            return
        repos.update_task(self.store, self.workflow_id, self.task_name, counts=counts)

    def output_of(self, task: str) -> dict[str, Any]:
        """The counts an earlier task of this workflow stored (its output), read from the store: what a later
        task may rely on in a resumed workflow, where `shared` is empty."""
        if self.dry_results is not None:
            return self.dry_results[task].counts if task in self.dry_results else {}
        return self._task(task).counts

    def checkpoint_of(self, task: str) -> dict[str, Any]:
        """The checkpoint an earlier task of this workflow stored (e.g. the plan of `plan`)."""
        if self.dry_results is not None:
            return self.dry_results[task].checkpoint if task in self.dry_results else {}
        return self._task(task).checkpoint

    def _task(self, name: str) -> TaskRecord:
        workflow = repos.get_workflow(self.store, self.workflow_id)
        return next(t for t in workflow.tasks if t.name == name)


class WorkflowFailedError(Exception):
    """Raised by `run_workflow` when a task failed; carries the stored workflow."""

    def __init__(self, workflow: WorkflowRecord) -> None:
        error = workflow.error or {}
        super().__init__(error.get("message", "workflow failed"))
        self.workflow = workflow


def _now() -> datetime:
    return datetime.now(UTC)


async def run_workflow(
    store: Store,
    workflow_id: str,
    specs: Sequence[TaskSpec],
    *,
    start_at: str | None = None,
    shared: dict[str, Any] | None = None,
    on_failure: Callable[[WorkflowRecord], None] | None = None,
    fence: Callable[[], None] | None = None,
) -> WorkflowRecord:
    """Run the workflow's tasks in order, from `start_at` (default: the first task not yet succeeded).

    Returns the stored workflow when every task succeeded; raises `WorkflowFailedError` otherwise. `fence`
    is called before each task and checkpoint: it raises when another process took the workflow's lease.
    """
    workflow = repos.get_workflow(store, workflow_id)
    states = {task.name: task for task in workflow.tasks}
    names = [spec.name for spec in specs]
    if start_at is not None and start_at not in names:
        raise ValueError(
            f"workflow {workflow_id} has no task {start_at!r}; its tasks are: {', '.join(names)}"
        )
    first_open = next((i for i, name in enumerate(names) if states[name].state != "succeeded"), len(names))
    begin = names.index(start_at) if start_at else first_open
    if begin > first_open:
        # Starting past a task that has not succeeded would skip it, and the workflow would end `succeeded`
        # with that task still failed (and what depends on it run on missing output): refuse instead.
        raise TaskOrderError(
            f"task {start_at!r} comes after {names[first_open]!r}, which has not succeeded in workflow "
            f"{workflow_id}: retry from {names[first_open]!r} (leave out --task), or pick an earlier task"
        )
    shared = shared if shared is not None else {}
    repos.update_workflow(
        store,
        workflow_id,
        state="running",
        started_at=workflow.started_at or _now(),
        finished_at=None,
        error=None,
    )
    totals: dict[str, Any] = dict(workflow.counts)
    for spec in specs[begin:]:
        record = states[spec.name]
        crash_point(f"before:{spec.name}")
        repos.update_task(
            store,
            workflow_id,
            spec.name,
            state="running",
            started_at=_now(),
            finished_at=None,
            error=None,
            add_attempt=True,
        )
        ctx = TaskContext(store, workflow_id, spec.name, dict(record.checkpoint), shared, fence=fence)
        try:
            if fence is not None:
                fence()
            counts = await spec.run(ctx) or {}
        except Exception as exc:  # every failure becomes a classified, stored resolution
            error = classify_exception(exc) | {"task": spec.name}
            error["traceback_tail"] = _traceback_tail(exc)
            repos.update_task(store, workflow_id, spec.name, state="failed", finished_at=_now(), error=error)
            repos.update_workflow(
                store, workflow_id, state="failed", finished_at=_now(), error=error, counts=totals
            )
            resolution = resolution_for(error["resolution"])
            repos.add_notification(
                store,
                workflow_id=workflow_id,
                severity="error",
                title=f"{workflow.orchestration}: {resolution.title}",
                message=f"Task {spec.name!r} failed: {error['message']} "
                f"See `ttsync workflows show {workflow_id}`.",
                resolution=resolution.key,
            )
            failed = repos.get_workflow(store, workflow_id)
            if on_failure is not None:
                on_failure(failed)
            raise WorkflowFailedError(failed) from exc
        if ctx.warnings:
            counts = counts | {WARNINGS_KEY: ctx.warnings}
        totals[spec.name] = counts
        repos.update_task(store, workflow_id, spec.name, state="succeeded", finished_at=_now(), counts=counts)
        repos.update_workflow(store, workflow_id, counts=totals)
        crash_point(f"after:{spec.name}")
    done = repos.get_workflow(store, workflow_id)
    warnings = workflow_warnings(done)
    serious = [w for w in warnings if w.get("serious")]
    state: WorkflowState = "succeeded_with_warnings" if serious else "succeeded"
    repos.update_workflow(store, workflow_id, state=state, finished_at=_now(), counts=totals)
    if serious:
        explained_by = next((str(w["resolution"]) for w in serious if w.get("resolution")), None)
        repos.add_notification(
            store,
            workflow_id=workflow_id,
            severity="warning",
            title=f"{workflow.orchestration}: succeeded with warnings",
            message=" ".join(f"{w['message']}." for w in warnings)
            + f" See `ttsync workflows show {workflow_id}`.",
            resolution=explained_by,
        )
    return repos.get_workflow(store, workflow_id)


@dataclass
class DryRunTask:
    """What one task of a dry run returned: its counts, the checkpoint it would have saved, its warnings."""

    counts: dict[str, Any]
    checkpoint: dict[str, Any]
    warnings: list[dict[str, Any]]


async def dry_run_workflow(
    store: Store, workflow_id: str, specs: Sequence[TaskSpec], *, shared: dict[str, Any] | None = None
) -> dict[str, DryRunTask]:
    """Run the declared tasks that run in a dry run (`TaskSpec.in_dry_run`), in order, with `ctx.dry_run`
    set: nothing is stored (no workflow record exists), checkpoints and counts pass between the tasks in
    memory, and a failure is raised as is (a preview has no workflow to fail). Returns each task's result."""
    shared = shared if shared is not None else {}
    results: dict[str, DryRunTask] = {}
    for spec in specs:
        if not spec.in_dry_run:
            continue
        ctx = TaskContext(store, workflow_id, spec.name, {}, shared, dry_run=True, dry_results=results)
        counts = await spec.run(ctx) or {}
        results[spec.name] = DryRunTask(counts, ctx.checkpoint, ctx.warnings)
    return results


def workflow_warnings(workflow: WorkflowRecord) -> list[dict[str, Any]]:
    """Every warning the workflow's tasks recorded, in task order: `{task, message, serious, resolution}`."""
    found: list[dict[str, Any]] = []
    for task in workflow.tasks:
        for warning in task.counts.get(WARNINGS_KEY) or []:
            if isinstance(warning, dict):
                found.append({"task": task.name} | warning)
    return found


def reset_for_restart(store: Store, workflow: WorkflowRecord) -> None:
    """Clear every task's state and checkpoint so the workflow runs again from its first task."""
    for task in workflow.tasks:
        repos.update_task(
            store,
            workflow.id,
            task.name,
            state="pending",
            checkpoint={},
            counts={},
            error=None,
            started_at=None,
            finished_at=None,
        )
    repos.update_workflow(store, workflow.id, state="pending", counts={}, error=None, finished_at=None)


def _traceback_tail(exc: BaseException) -> str:
    # Only the last frame's location (file:line in function), never local values: they may hold PII.
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
