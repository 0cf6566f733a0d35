"""Run workers: separate processes that claim queued runs from the store and execute them, so a sync never
runs in the web server's event loop or blocks the API. A worker that dies mid-run leaves its workflow
`interrupted` (its lease goes stale) and retryable; queued runs stay in the store across restarts."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.context import SpawnProcess
from pathlib import Path

from ttsync.app import background
from ttsync.app.workspace.layout import Workspace
from ttsync.errors import NotFoundError
from ttsync.server.metrics import RunMetrics, observe_tiktok_calls
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.runqueue import QueuedRun

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
WORKER_NICENESS = 5


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the server dies (`PR_SET_PDEATHSIG`), so a killed server
    leaves no orphan finishing a run on its own: the run reads `interrupted`, retryable, and the server's
    restart runs what was still queued."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_main(root: str, stop_after: float | None = None) -> None:
    """A worker process: claim and execute queued runs until terminated."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    _die_with_parent()
    # A sync is batch work: on a busy machine the API's requests (and the scheduler) come first.
    os.nice(WORKER_NICENESS)
    parent = os.getppid()
    workspace = Workspace(Path(root))
    store = workspace.open_store()
    metrics = observe_tiktok_calls()
    try:
        while os.getppid() == parent:  # the server died (killed): stop claiming, its restart takes over
            item = background.claim(store)
            if item is None:
                time.sleep(POLL_SECONDS)
                continue
            log.info("worker: running %s of %s", item.action, item.orchestration)
            began = datetime.now(UTC)
            background.execute(workspace, store, item)
            for workflow_id in _workflows_of(store, item):
                _count(store, metrics, workflow_id, began)
    finally:
        store.close()


def _workflows_of(store: Store, item: QueuedRun) -> list[str]:
    """The workflows a queue row ran: its own, or a campaign run's deliveries' (never stops the worker)."""
    if item.kind != "campaign":
        return [item.workflow_id]
    try:
        finished = runqueue.get_queued(store, item.id)
        return [w.id for w in background.campaign_run_workflows(store, finished)]
    except Exception:  # the campaign deleted meanwhile: its metrics are not worth a worker
        log.exception("could not find the deliveries of campaign run %s", item.workflow_id)
        return []


def _count(store: Store, metrics: RunMetrics, workflow_id: str, began: datetime) -> None:
    """Add what the run did to the metrics; never stops the worker (metrics are not worth a lost run)."""
    try:
        workflow = repos.get_workflow(store, workflow_id)
    except NotFoundError:
        return  # refused before its workflow existed: nothing ran
    try:
        metrics.record_run(workflow, began)
    except Exception:
        log.exception("could not count the metrics of workflow %s", workflow_id)


class WorkerPool:
    """N worker processes (spawned: a fresh interpreter, nothing of the server's threads or sockets)."""

    def __init__(self, workspace: Workspace, size: int) -> None:
        self.workspace = workspace
        self.size = size
        self.processes: list[SpawnProcess] = []
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    def _spawn(self, index: int) -> SpawnProcess:
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=worker_main, args=(str(self.workspace.root),), name=f"ttsync-worker-{index}", daemon=True
        )
        process.start()
        return process

    def start(self) -> None:
        """Start the workers, and a thread that replaces a worker that died (its run reads `interrupted`)."""
        self.processes = [self._spawn(index) for index in range(self.size)]
        self._monitor = threading.Thread(target=self._watch, name="ttsync-workers", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self._stop.is_set():
                    log.warning("run worker %d exited (code %s): starting another", index, process.exitcode)
                    self.processes[index] = self._spawn(index)

    def alive(self) -> int:
        """How many workers run."""
        return sum(1 for process in self.processes if process.is_alive())

    def stop(self) -> None:
        """Terminate the workers (a run in progress becomes `interrupted`, retryable)."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=10)
