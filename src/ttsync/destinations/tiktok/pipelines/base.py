"""What every orchestration run shares: the loaded objects, options, progress reporting and the client."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.destinations.tiktok.client import AsyncTikTokClient, RateLimits, RetryPolicy
from ttsync.destinations.tiktok.oauth import ensure_fresh_token
from ttsync.destinations.tiktok.settings import destination_base_url
from ttsync.identity.rowkeys import KeyHasher
from ttsync.store.db import Store
from ttsync.store.leases import LeaseKeeper
from ttsync.workflows.engine import DryRunTask, TaskSpec, dry_run_workflow


class Reporter:
    """Progress and messages of a run; the CLI renders them with rich, tests and `--json` ignore them."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A long step starts (total in rows or identifiers when known)."""

    def advance(self, name: str, amount: int) -> None:
        """Some of a step is done."""

    def note(self, text: str) -> None:
        """A line worth showing (a warning, an audience created)."""


@dataclass
class RunOptions:
    """Knobs of one run (defaults suit production; tests and benchmarks turn them)."""

    batch_rows: int = 10_000
    in_flight: int = 8
    read_batch_rows: int = 100_000
    ready_timeout_seconds: float = 600.0
    allow_large_removal: bool = False
    rate_limits: RateLimits | None = None
    retry: RetryPolicy | None = None
    duckdb_memory_limit: str = "512MB"


@dataclass(kw_only=True)
class OrchestrationRun:
    """One orchestration with its destination, data template, credential and source, ready to run."""

    kind: ClassVar[str] = ""
    store: Store
    root: Path
    state_dir: Path
    orchestration: Orchestration
    destination: Destination
    template: DataTemplate | None
    credential: Credential
    source: Source
    options: RunOptions = field(default_factory=RunOptions)
    reporter: Reporter = field(default_factory=Reporter)
    client_factory: Callable[[], AsyncTikTokClient] | None = None
    # Keeps a subset of each batch before the identity rules (a campaign's random split, sync.groups).
    row_filter: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None
    # The most identifiers one re-sync may add plus remove, from the audience's size (a campaign's
    # learning-phase guard); the rest is deferred to later syncs (sync.plan).
    change_cap: Callable[[int], int] | None = None
    leases: LeaseKeeper | None = None  # set while the workflow runs: its leases (see services/ownership.py)
    dry_run_dir: Path | None = None  # set during a dry run: its temporary folder, removed afterwards
    # The environment the app passed (for `$TTSYNC_SANDBOX_URL`); None: the process environment.
    environ: Mapping[str, str] | None = None
    # What the app adds around the run's tasks (forget requests and suppression lists, `app.privacy`): a dry
    # run (`preview`) runs the same tasks as the workflow would.
    wrap_tasks: Callable[[OrchestrationRun, list[TaskSpec]], list[TaskSpec]] | None = None

    def base_url(self) -> str:
        """The API base URL of the destination (the emulator for sandbox)."""
        environ = os.environ if self.environ is None else self.environ
        return destination_base_url(self.destination, self.credential, environ)

    def run_dir(self, workflow_id: str) -> Path:
        """Folder of this run's intermediate files (hashes, plans and outcomes only)."""
        if self.dry_run_dir is not None:
            return self.dry_run_dir
        return self.state_dir / "runs" / workflow_id

    def key_hasher(self) -> KeyHasher:
        """Keyed hashing of identifier-looking row keys and event ids, with the workspace's key (stable across
        runs: the ledger and TikTok's de-duplication see the same event id every time)."""
        return KeyHasher(self.store.box.derive_key(KeyHasher.PURPOSE))

    def client(self, max_concurrency: int | None = None) -> AsyncTikTokClient:
        """A client for the destination's environment (the emulator for sandbox), with room for
        `max_concurrency` requests at once (default: the run's `in_flight`, at least 4)."""
        if self.client_factory is not None:
            return self.client_factory()
        # Tokens that carry a refresh token are refreshed shortly before they expire (and stored again);
        # a refused refresh raises inside the task, so the workflow reports `token_expired`.
        self.credential = ensure_fresh_token(self.store, self.credential.name, base_url=self.base_url())
        return AsyncTikTokClient(
            access_token=self.credential.access_token,
            app_id=self.credential.app_id,
            app_secret=self.credential.app_secret,
            base_url=self.base_url(),
            max_concurrency=max_concurrency or max(self.options.in_flight, 4),
            rate_limits=self.options.rate_limits,
            retry=self.options.retry,
        )

    def task_names(self) -> tuple[str, ...]:
        """Names of the workflow's tasks, in order."""
        return tuple(spec.name for spec in self.tasks())

    def tasks(self) -> list[TaskSpec]:
        """The workflow's tasks in order."""
        raise NotImplementedError

    def workflow_tasks(self) -> list[TaskSpec]:
        """The tasks with what the app adds around them (`wrap_tasks`): what a workflow of this run runs."""
        tasks = self.tasks()
        return self.wrap_tasks(self, tasks) if self.wrap_tasks is not None else tasks

    def preview(self) -> dict[str, Any]:
        """What a run would do, sending nothing (`ttsync run --plan`)."""
        raise NotImplementedError

    def dry_run(self, shared: dict[str, Any] | None = None) -> dict[str, DryRunTask]:
        """Run the workflow's declared tasks in dry-run mode (nothing sent, nothing stored) in a temporary
        folder, removed afterwards; `shared` receives what the tasks pass on in memory."""
        work = Path(tempfile.mkdtemp(prefix="ttsync-plan-"))
        self.dry_run_dir = work
        try:
            return asyncio.run(
                dry_run_workflow(self.store, f"plan-{uuid.uuid4().hex}", self.workflow_tasks(), shared=shared)
            )
        finally:
            self.dry_run_dir = None
            shutil.rmtree(work, ignore_errors=True)
