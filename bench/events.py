"""Offline events end to end: N events from Arrow batches into the emulator, batches of 1,000.

Starts `ttsync emulator serve --seed demo` as a subprocess on a free loopback port, raises its `events`
rate limit through the admin API, then runs `ttsync.destinations.tiktok.events.deliver_events` over synthetic
warehouse batches of 100,000 rows (raw emails and phones, so identity normalizes and hashes them; one event in
ten has two item rows, adjacent). Prints one JSON object:

    {"events": 1000000, "rows": 1100000, "seconds": ..., "events_per_s": ..., "first_batch_seconds": ...,
     "cpu_us_per_event": ..., "emulator_cpu_us_per_event": ..., "peak_rss_mib": ..., ...}

`seconds` covers everything from the first source batch to the last confirmed batch (validation, hashing,
grouping, ledger, HTTP); `first_batch_seconds` runs from the first source batch in hand to TikTok's
confirmation of the first request. CPU time says more than wall time on a shared machine (`load_average_1m`
shows how shared it was): `cpu_us_per_event` is ttsync's (this process's CPU less the synthetic source's,
`source_cpu_seconds`), `process_cpu_us_per_event` includes the source, `emulator_cpu_us_per_event` is the
emulator process's. `peak_rss_mib` is this process's peak (VmHWM; `start_rss_mib` its RSS once everything is imported
and the emulator runs, before the first row). Targets (issue 16, docs/performance.md): ttsync CPU <= 10 µs
and emulator <= 8 µs per event at 1M events, first batch <= 1 s, peak RSS <= 512 MiB and flat in N.
Run: python bench/events.py --events 1000000 [--random-ids]     (CI smoke: --events 2000)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from emulator_process import emulator_process
from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RateLimits
from ttsync.destinations.tiktok.events import deliver_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorAdmin
from ttsync.events.ledger import Ledger


def source_batches(
    events: int, batch_rows: int = 100_000, random_ids: bool = False
) -> Iterator[pa.RecordBatch]:
    """Synthetic warehouse rows built with numpy and Arrow compute (a real source streams Arrow batches just as
    cheaply). One row per event, plus a second item row for every tenth event (the rows of one event are
    adjacent). Event ids are `order-N` in ascending order, or with `random_ids` 32 hex characters in no order
    (a hashed order id, as real warehouses have: the ledger's keys then arrive at random)."""
    base = int((datetime.now(UTC) - timedelta(days=3)).timestamp())
    per_batch = batch_rows * 10 // 11
    for start in range(0, events, per_batch):
        numbers = np.arange(start, min(start + per_batch, events), dtype=np.int64)
        rows_per_event = 1 + (numbers % 10 == 0)
        event_no = np.repeat(numbers, rows_per_event)
        # 0 for an event's first row, 1 for its second.
        item_no = np.arange(len(event_no)) - np.repeat(
            np.cumsum(rows_per_event) - rows_per_event, rows_per_event
        )
        n = len(event_no)
        text = pc.cast(pa.array(event_no), pa.string())
        event_id = _random_ids(event_no) if random_ids else pc.binary_join_element_wise("order-", text, "")
        item = pa.array(item_no)
        stamps = pc.cast(pa.array(event_no % 200_000 + base).cast(pa.timestamp("s", tz="UTC")), pa.string())
        yield pa.RecordBatch.from_pydict(
            {
                "row_key": pc.binary_join_element_wise(
                    "k", pc.cast(pa.array(event_no * 2 + item_no), pa.string()), ""
                ),
                "email": pc.binary_join_element_wise(" User", text, "@Example.com", ""),
                "phone": pc.binary_join_element_wise(
                    "+1 206 555 ", pc.utf8_lpad(pc.cast(pa.array(event_no % 10_000), pa.string()), 4, "0"), ""
                ),
                "event": pa.repeat(pa.scalar("CompletePayment"), n),
                "event_id": event_id,
                "timestamp": stamps,
                "currency": pa.repeat(pa.scalar("USD"), n),
                "event_channel": pa.repeat(pa.scalar("in_store"), n),
                "content_id": pc.binary_join_element_wise("sku-", pc.cast(item, pa.string()), ""),
                "price": pa.array(item_no + 9.99),
                "quantity": pa.repeat(pa.scalar(1, pa.int64()), n),
            }
        )


def _random_ids(event_no: np.ndarray) -> pa.Array:
    """32 hex characters per event number, unordered and unique (the first 128 bits of its SHA-256)."""
    numbers = pc.cast(pa.array(np.unique(event_no)), pa.string()).to_pylist()
    ids = pa.array([hashlib.sha256(n.encode()).hexdigest()[:32] for n in numbers], pa.string())
    return pc.take(ids, pa.array(event_no - event_no[0]))


def _rss_mib(field: str) -> float:
    """This process's `VmHWM` (peak) or `VmRSS` (now) in MiB. Not ru_maxrss: a process started by fork and exec
    can carry its parent's peak in it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the closest there is


class _PeakRss:
    """Samples a process's RSS every 50 ms in a thread (for the emulator subprocess)."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _run(
    seed: dict[str, Any], events: int, work: Path, in_flight: int, random_ids: bool
) -> dict[str, Any]:
    settings = ResolvedOfflineEventsSettings(
        advertiser_id=seed["advertiser_ids"][0], event_set_id=seed["event_set_id"]
    )
    marks: dict[str, float] = {}

    def progress(totals: Any) -> None:
        marks.setdefault("first_confirmed", time.perf_counter())

    def timed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # The synthetic source's own CPU time (it runs in this thread, between ttsync's steps) is reported apart.
        while True:
            cpu = time.thread_time()
            batch = next(batches, None)
            marks["source_cpu"] = marks.get("source_cpu", 0.0) + time.thread_time() - cpu
            if batch is None:
                return
            marks.setdefault("first_source_batch", time.perf_counter())
            yield batch

    async with AsyncTikTokClient(
        access_token=seed["operator_token"],
        base_url=seed["root_url"] + "/open_api/v1.3/",
        limiters=LimiterRegistry(),
        rate_limits=RateLimits(events=100_000.0),
        timeout=120.0,
        max_concurrency=in_flight,
    ) as client:
        with Ledger.open(work / "state") as ledger:
            start = time.perf_counter()
            result = await deliver_events(
                client,
                timed(source_batches(events, random_ids=random_ids)),
                settings=settings,
                key_column="row_key",
                run_dir=work / "run",
                ledger=ledger,
                progress=progress,
                max_in_flight=in_flight,
            )
            seconds = time.perf_counter() - start
    totals = result.totals
    return {
        "events": totals.events,
        "rows": totals.rows,
        "seconds": round(seconds, 2),
        "events_per_s": round(totals.events / seconds),
        # From the first source batch in hand to TikTok's confirmation of the first request.
        "first_batch_seconds": round(
            marks.get("first_confirmed", start) - marks.get("first_source_batch", start), 2
        ),
        "sent": totals.sent,
        "rejected": dict(totals.rejected),
        "requests": totals.requests,
        "in_flight": in_flight,
        "random_ids": random_ids,
        "source_cpu_seconds": round(marks.get("source_cpu", 0.0), 2),
    }


def main() -> None:
    """Parse arguments, run the benchmark, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument(
        "--random-ids", action="store_true", help="hashed event ids in no order (as real warehouses have)"
    )
    args = parser.parse_args()
    with emulator_process() as (seed, emulator), tempfile.TemporaryDirectory() as tmp:
        admin = EmulatorAdmin(seed["root_url"], seed["admin_token"])
        try:
            admin.set_rate_limit("events", qps=100_000, qpm=10_000_000, qpd=1_000_000_000)
        finally:
            admin.close()
        start_rss = _rss_mib("VmRSS")
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        emu_before = emulator.cpu_times()
        with _PeakRss(emulator) as emulator_rss:
            report = asyncio.run(_run(seed, args.events, Path(tmp), args.in_flight, args.random_ids))
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        emu_after = emulator.cpu_times()
        # CPU seconds say what the work costs independently of other load on a shared machine.
        own_cpu = (own_after.ru_utime - own_before.ru_utime) + (own_after.ru_stime - own_before.ru_stime)
        emu_cpu = (emu_after.user - emu_before.user) + (emu_after.system - emu_before.system)
        events = max(1, report["events"])
        report["process_cpu_seconds"] = round(own_cpu, 2)
        report["process_cpu_us_per_event"] = round(own_cpu / events * 1e6, 1)
        # ttsync's own CPU: the process's, less the synthetic source's (a real source is the warehouse's work).
        report["cpu_us_per_event"] = round((own_cpu - report["source_cpu_seconds"]) / events * 1e6, 1)
        report["emulator_cpu_seconds"] = round(emu_cpu, 2)
        report["emulator_cpu_us_per_event"] = round(emu_cpu / events * 1e6, 1)
        report["load_average_1m"] = round(psutil.getloadavg()[0], 2)
        report["start_rss_mib"] = round(start_rss)
        report["peak_rss_mib"] = round(_rss_mib("VmHWM"))
        report["emulator_peak_rss_mib"] = round(emulator_rss.peak / 2**20)
        report["cpus"] = psutil.cpu_count()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
