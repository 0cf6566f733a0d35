"""The Python API: ttsync as a library, for Airflow, Dagster, notebooks and scripts (docs/python-api.md).

    import ttsync

    result = ttsync.Workspace("my-workspace").run("high-value-customers")
    print(result.status, result.workflow_id, result.counts["upload"])

A thin, typed facade over the services the CLI uses (`ttsync.app.runs`): it opens the workspace's store,
calls them, and turns their records into small frozen results. It holds no logic of its own, so the CLI and
the API always behave the same. Every name in `__all__` follows semantic versioning (docs/python-api.md).

Runs are synchronous (each one runs its own event loop, as `ttsync run` does); the `a...` variants run them
in a worker thread, for callers inside an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ttsync.app.runs import RunOutcome, build_continue_run, build_run, continue_run, preview_run, start_run
from ttsync.app.workspace.layout import Workspace as _Layout
from ttsync.destinations.tiktok.pipelines.base import RunOptions
from ttsync.errors import RunRefusedError as _Refused
from ttsync.errors import WorkspaceError
from ttsync.exitcodes import EXIT_USAGE, for_failed_workflow
from ttsync.redact import redact_error
from ttsync.sources import SourceError
from ttsync.store import SecretKeyError, StoreError, repos
from ttsync.store.db import Store
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import workflow_warnings
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher

__all__ = [
    "ConfigurationError",
    "RunFailedError",
    "RunRefusedError",
    "RunResult",
    "TtsyncError",
    "WorkflowSummary",
    "Workspace",
]

PLANNED = "planned"  # `RunResult.status` of a plan (nothing was sent, no workflow was created)


class TtsyncError(Exception):
    """Base of the API's errors. `resolution`: the key of docs/resolutions.md that explains it (or None);
    `exit_code`: what `ttsync` exits with in the same case (README, "Exit codes")."""

    def __init__(self, message: str, *, resolution: str | None, exit_code: int) -> None:
        super().__init__(message)
        self.resolution = resolution
        self.exit_code = exit_code


class ConfigurationError(TtsyncError):
    """The workspace, an object or a setting is missing or invalid; nothing was run."""


class RunFailedError(TtsyncError):
    """A workflow failed; `result` holds it (workflow id, counts) and `resolution` says how to continue."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(
            f"workflow {result.workflow_id} of {result.orchestration} failed ({result.resolution}): {result.error}",
            resolution=result.resolution,
            exit_code=for_failed_workflow(result.resolution),
        )
        self.result = result


class RunRefusedError(TtsyncError):
    """Nothing ran: another workflow of the orchestration is running (`workflow_running`), or the workflow
    to continue was superseded by a newer run (`workflow_superseded`)."""


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run (or plan) of one orchestration."""

    orchestration: str
    status: str  # the workflow's state (succeeded, succeeded_with_warnings, failed, ...) or "planned"
    workflow_id: str | None  # None for a plan
    counts: dict[str, Any] = field(default_factory=dict)  # per task (a run) or the plan's figures (a plan)
    resolution: str | None = None  # set when the workflow failed
    error: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run succeeded (with or without warnings), or the plan was made."""
        return self.status in ("succeeded", "succeeded_with_warnings", PLANNED)


@dataclass(frozen=True)
class WorkflowSummary:
    """One workflow, as `ttsync workflows list` shows it."""

    workflow_id: str
    orchestration: str
    kind: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    resolution: str | None


class Workspace:
    """A ttsync workspace folder (default: `$TTSYNC_WORKSPACE`, else the current folder)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._layout = _Layout.discover(Path(path) if path is not None else None)

    @property
    def path(self) -> Path:
        """The workspace folder."""
        return self._layout.root

    def run(self, orchestration: str, *, plan: bool = False, allow_large_removal: bool = False) -> RunResult:
        """Run an orchestration now (or only plan it, with `plan=True`). Raises `RunFailedError` when the
        workflow fails and `ConfigurationError` when nothing could start."""
        if plan:
            return self.plan(orchestration)
        options = RunOptions(allow_large_removal=allow_large_removal)
        with self._store() as store:
            outcome = start_run(build_run(self._layout, store, orchestration, options=options))
            self._prune(store)
        return _checked(outcome)

    def plan(self, orchestration: str) -> RunResult:
        """What a run would do (adds, removes, rejects, warnings in `counts`); sends nothing."""
        with self._store() as store:
            preview = preview_run(build_run(self._layout, store, orchestration))
        return RunResult(orchestration, PLANNED, None, counts=preview, warnings=_plan_warnings(preview))

    def retry(self, workflow_id: str) -> RunResult:
        """Continue a failed workflow from its failed task (or write a failed write-back again)."""
        with self._store() as store:
            workflow = repos.get_workflow(store, repos.resolve_workflow_id(store, workflow_id))
            run = build_continue_run(self._layout, store, workflow.orchestration)
            outcome = continue_run(run, workflow.id, "retry")
        return _checked(outcome)

    def workflows(self, orchestration: str | None = None, *, limit: int = 20) -> list[WorkflowSummary]:
        """The most recent workflows first (of one orchestration when given)."""
        with self._store() as store:
            records = repos.list_workflows(store, orchestration=orchestration, limit=limit)
        return [_summary(record) for record in records]

    def row_keys(self, values: list[str] | list[int]) -> list[str]:
        """The row key each value is stored as (`ttsync rowkey`): join write-back rows to your tables."""
        with self._store() as store:
            return stored_row_keys(workspace_hasher(store), values)

    async def arun(
        self, orchestration: str, *, plan: bool = False, allow_large_removal: bool = False
    ) -> RunResult:
        """`run` in a worker thread."""
        return await asyncio.to_thread(
            self.run, orchestration, plan=plan, allow_large_removal=allow_large_removal
        )

    async def aplan(self, orchestration: str) -> RunResult:
        """`plan` in a worker thread."""
        return await asyncio.to_thread(self.plan, orchestration)

    async def aretry(self, workflow_id: str) -> RunResult:
        """`retry` in a worker thread."""
        return await asyncio.to_thread(self.retry, workflow_id)

    async def aworkflows(self, orchestration: str | None = None, *, limit: int = 20) -> list[WorkflowSummary]:
        """`workflows` in a worker thread."""
        return await asyncio.to_thread(self.workflows, orchestration, limit=limit)

    @contextlib.contextmanager
    def _store(self) -> Iterator[Store]:
        try:
            store = self._layout.open_store()
        except (WorkspaceError, StoreError, SecretKeyError) as exc:  # no workspace, key or store there
            raise ConfigurationError(
                redact_error(exc), resolution="configuration_error", exit_code=EXIT_USAGE
            ) from None
        try:
            yield store
        except (
            WorkspaceError,
            StoreError,
            SecretKeyError,
        ) as exc:  # ConfigError, NotFoundError, ...: nothing ran
            raise ConfigurationError(
                redact_error(exc), resolution="configuration_error", exit_code=EXIT_USAGE
            ) from None
        except _Refused as exc:
            raise RunRefusedError(
                redact_error(exc), resolution=exc.resolution_key, exit_code=exc.exit_code
            ) from None
        except SourceError as exc:
            raise ConfigurationError(
                redact_error(exc), resolution=exc.resolution_key, exit_code=EXIT_USAGE
            ) from None
        finally:
            store.close()

    def _prune(self, store: Store) -> None:
        # As after `ttsync run`: the retention setting applies; a failure here never fails the run.
        from ttsync.app.retention import prune_runs

        with contextlib.suppress(Exception):
            prune_runs(self._layout.state_dir, store)


def _checked(outcome: RunOutcome) -> RunResult:
    result = _result(outcome.workflow)
    if not outcome.ok:
        raise RunFailedError(result)
    return result


def _result(workflow: WorkflowRecord) -> RunResult:
    error = workflow.error or {}
    return RunResult(
        orchestration=workflow.orchestration,
        status=workflow.state,
        workflow_id=workflow.id,
        counts=dict(workflow.counts),
        resolution=error.get("resolution"),
        error=error.get("message"),
        warnings=workflow_warnings(workflow),
    )


def _plan_warnings(preview: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"message": str(text)} for text in preview.get("warnings") or []]


def _summary(record: WorkflowRecord) -> WorkflowSummary:
    return WorkflowSummary(
        workflow_id=record.id,
        orchestration=record.orchestration,
        kind=record.kind,
        status=record.state,
        created_at=record.created_at,
        finished_at=record.finished_at,
        resolution=(record.error or {}).get("resolution"),
    )
