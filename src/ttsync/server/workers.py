"""Run workers: separate processes that claim queued runs from the store and execute them, so a sync never
runs in the web server's event loop or blocks the API. A worker that dies mid-run leaves its workflow
`interrupted` (its lease goes stale) and retryable; queued runs stay in the store across restarts."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from multiprocessing.context import SpawnProcess
from pathlib import Path

from ttsync.app import background
from ttsync.app.workspace.layout import Workspace

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


def worker_main(root: str, stop_after: float | None = None) -> None:
    """A worker process: claim and execute queued runs until terminated."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    workspace = Workspace(Path(root))
    store = workspace.open_store()
    try:
        while True:
            item = background.claim(store)
            if item is None:
                time.sleep(POLL_SECONDS)
                continue
            log.info("worker: running %s of %s", item.action, item.orchestration)
            background.execute(workspace, store, item)
    finally:
        store.close()


class WorkerPool:
    """N worker processes (spawned: a fresh interpreter, nothing of the server's threads or sockets)."""

    def __init__(self, workspace: Workspace, size: int) -> None:
        self.workspace = workspace
        self.size = size
        self.processes: list[SpawnProcess] = []

    def start(self) -> None:
        """Start the workers."""
        context = multiprocessing.get_context("spawn")
        for index in range(self.size):
            process = context.Process(
                target=worker_main,
                args=(str(self.workspace.root),),
                name=f"ttsync-worker-{index}",
                daemon=True,
            )
            process.start()
            self.processes.append(process)

    def alive(self) -> int:
        """How many workers run."""
        return sum(1 for process in self.processes if process.is_alive())

    def stop(self) -> None:
        """Terminate the workers (a run in progress becomes `interrupted`, retryable)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=10)
