"""Prometheus metrics (`/metrics`).

The server's processes share them through prometheus_client's multiprocess mode: `serve` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh 0700 folder of the workspace state before it starts anything, every
process (HTTP workers, run workers) writes its counters there, and a scrape sums them. So the runs' counters
(identifiers and events sent and rejected, TikTok calls by endpoint and code, rate-limit waits, task durations),
counted in the run worker processes, appear on the API's `/metrics`.

Runs by orchestration and state and the run queue are read from the store at scrape time (every server of
the store counts)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ttsync.destinations.tiktok.client import observe
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.records import WorkflowRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: a limiter wait is usually 0 or a few ms; a task from milliseconds to hours.
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
_TASK_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


def use_metrics_dir(state_dir: Path, port: int) -> Path:
    """Start multiprocess mode for this server: an empty 0700 folder `<state>/metrics/<port>` (one per server
    on the workspace; the counters of a previous server on the port are removed) in the environment of every
    process started from now on, and in this one."""
    folder = state_dir / "metrics" / str(port)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700)
    os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    os.environ[MULTIPROC_ENV] = str(folder)
    # prometheus_client picks the value class when first imported (before the folder was chosen).
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return folder


def multiprocess_mode() -> bool:
    """Whether this process writes its metrics to the shared folder."""
    return bool(os.environ.get(MULTIPROC_ENV))


class StoreCollector(Collector):
    """Runs by orchestration and state, and the queue by state, from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Read the counts now."""
        runs = GaugeMetricFamily(
            "ttsync_workflows",
            "Stored workflows by orchestration and state",
            labels=["orchestration", "state"],
        )
        for orchestration, state, count in repos.count_workflows_by_state(self.store):
            runs.add_metric([orchestration, state], count)
        yield runs
        queue = GaugeMetricFamily("ttsync_run_queue", "Queued runs by state", labels=["state"])
        for state, count in runqueue.count_by_state(self.store).items():
            queue.add_metric([state], count)
        yield queue


class Metrics:
    """The server's scrape registry and its HTTP instruments."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        shared = multiprocess_mode()
        # In multiprocess mode the instruments write to the folder and the collector reads every process's
        # files; registering them as well would count this process twice.
        own = None if shared else self.registry
        self.requests = Counter(
            "ttsync_http_requests", "API requests", ["method", "route", "status"], registry=own
        )
        self.latency = Histogram(
            "ttsync_http_request_seconds", "API request duration", ["route"], registry=own
        )
        if shared:
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            run_metrics(self.registry)  # registered (all zero): this process runs nothing
        self.registry.register(StoreCollector(store))


class RunMetrics:
    """Counters of what runs did, counted in the run worker processes."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.ids_sent = Counter(
            "ttsync_identifiers_sent", "Hashed identifiers sent to TikTok audiences", ["orchestration", "action"],
            registry=registry,
        )  # fmt: skip
        self.ids_rejected = Counter(
            "ttsync_identifiers_rejected", "Identifier values rejected before sending, by reason",
            ["orchestration", "reason"], registry=registry,
        )  # fmt: skip
        self.events_sent = Counter(
            "ttsync_events_sent", "Offline events TikTok accepted", ["orchestration"], registry=registry
        )
        self.events_rejected = Counter(
            "ttsync_events_rejected", "Offline events rejected (before sending or by TikTok), by reason",
            ["orchestration", "reason"], registry=registry,
        )  # fmt: skip
        self.events_duplicate = Counter(
            "ttsync_events_duplicate", "Offline events skipped: TikTok already has them", ["orchestration"],
            registry=registry,
        )  # fmt: skip
        self.task_seconds = Histogram(
            "ttsync_task_seconds", "Duration of workflow tasks", ["kind", "task", "state"],
            buckets=_TASK_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tiktok_calls = Counter(
            "ttsync_tiktok_calls", "TikTok API answers by endpoint and code", ["endpoint", "code"],
            registry=registry,
        )  # fmt: skip
        self.rate_limit_waits = Histogram(
            "ttsync_tiktok_rate_limit_wait_seconds", "Time requests waited for the rate limiter, by endpoint",
            ["endpoint"], buckets=_WAIT_BUCKETS, registry=registry,
        )  # fmt: skip

    def answered(self, endpoint: str, code: str) -> None:
        """A TikTok answer (`observe.CallObserver`)."""
        self.tiktok_calls.labels(endpoint, code).inc()

    def waited(self, endpoint: str, seconds: float) -> None:
        """A limiter wait (`observe.CallObserver`)."""
        self.rate_limit_waits.labels(endpoint).observe(seconds)

    def record_run(self, workflow: WorkflowRecord, since: datetime) -> None:
        """Count the tasks of `workflow` that finished at or after `since` (those this execution ran: a retry
        does not count again what an earlier attempt did)."""
        name = workflow.orchestration
        for task in workflow.tasks:
            if task.finished_at is None or task.finished_at < since:
                continue
            if task.started_at is not None:
                seconds = (task.finished_at - task.started_at).total_seconds()
                self.task_seconds.labels(workflow.kind, task.name, task.state).observe(max(0.0, seconds))
            if task.state != "succeeded":
                continue
            counts = task.counts
            if task.name == "prepare":
                for kind in (counts.get("match_report") or {}).get("types", []):
                    for reason, n in (kind.get("rejected") or {}).items():
                        self.ids_rejected.labels(name, str(reason)).inc(_number(n))
            elif task.name == "upload":
                self.ids_sent.labels(name, "add").inc(_number(counts.get("added_ids")))
                self.ids_sent.labels(name, "remove").inc(_number(counts.get("removed_ids")))
            elif task.name == "deliver" and workflow.kind == "offline_events":
                self.events_sent.labels(name).inc(_number(counts.get("sent")))
                self.events_duplicate.labels(name).inc(_number(counts.get("duplicate_skipped")))
                for reason, n in _mapping(counts.get("rejected")).items():
                    self.events_rejected.labels(name, str(reason)).inc(_number(n))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@cache
def run_metrics(registry: CollectorRegistry | None = None) -> RunMetrics:
    """The one `RunMetrics` of this process (in multiprocess mode: `run_metrics()`, written to the folder)."""
    return RunMetrics(registry)


def observe_tiktok_calls() -> RunMetrics:
    """Count this process's TikTok calls and limiter waits (a run worker calls it once at start)."""
    metrics = run_metrics()
    observe.observe(metrics)
    return metrics
