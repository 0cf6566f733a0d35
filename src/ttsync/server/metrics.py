"""Prometheus metrics (`/metrics`): HTTP requests and their duration, runs by orchestration and state and the
run queue (read from the store at scrape time, so runs of every worker process and server count)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ttsync.store import repos, runqueue
from ttsync.store.db import Store


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
    """The server's registry and HTTP instruments."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ttsync_http_requests", "API requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "ttsync_http_request_seconds", "API request duration", ["route"], registry=self.registry
        )
        self.registry.register(StoreCollector(store))
