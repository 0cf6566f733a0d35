"""Offline events end to end: N events from Arrow batches into the emulator, batches of 1,000.

Starts `ttsync emulator serve --seed demo` as a subprocess on a free loopback port, raises its `events`
rate limit through the admin API, then runs `ttsync.destinations.tiktok.events.deliver_events` over synthetic warehouse
batches (raw emails and phones, so identity normalizes and hashes them; one event in ten has two item
rows). Prints one JSON object:

    {"events": 1000000, "rows": 1100000, "seconds": ..., "events_per_s": ..., "first_batch_seconds": ...,
     "peak_rss_mib": ..., "emulator_peak_rss_mib": ..., "sent": ..., "requests": ...}

`seconds` covers everything from the first source batch to the last confirmed batch (validation, hashing,
staging, grouping, ledger, HTTP); `peak_rss_mib` is this process. `cpu_us_per_event` (this process) and
`emulator_cpu_us_per_event` are CPU time per event: on a shared machine they say more than wall time, and
`load_average_1m` shows how shared it was. Targets (issue 5): events_per_s >= 100,000 and peak_rss_mib <= 1024.
Run: python bench/events.py --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from emulator_process import emulator_process
from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RateLimits
from ttsync.destinations.tiktok.events import deliver_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorAdmin
from ttsync.events.ledger import Ledger


def source_batches(events: int, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Synthetic warehouse rows built with Arrow compute (a real source streams Arrow batches just as cheaply).

    One row per event, plus a second item row for every tenth event (the rows of one event are adjacent).
    """
    base = int((datetime.now(UTC) - timedelta(days=3)).timestamp())
    per_batch = batch_rows * 10 // 11
    for start in range(0, events, per_batch):
        stop = min(start + per_batch, events)
        first = pa.array(range(start, stop), pa.int64())
        extra = pa.array(range(start + (-start % 10), stop, 10), pa.int64())  # events with a second item
        event_no = pc.take(
            pa.concat_arrays([first, extra]), pc.sort_indices(pa.concat_arrays([first, extra]))
        )
        item = pa.array([0] * len(first) + [1] * len(extra), pa.int64())
        item = pc.take(item, pc.sort_indices(pa.concat_arrays([first, extra])))
        n = len(event_no)
        text = pc.cast(event_no, pa.string())
        row_no = pc.add(pc.multiply(event_no, 2), item)
        stamps = pc.cast(
            pc.cast(pc.add(pc.remainder(event_no, 200_000), base), pa.timestamp("s", tz="UTC")), pa.string()
        )
        yield pa.RecordBatch.from_pydict(
            {
                "row_key": pc.binary_join_element_wise("k", pc.cast(row_no, pa.string()), ""),
                "email": pc.binary_join_element_wise(" User", text, "@Example.com", ""),
                "phone": pc.binary_join_element_wise(
                    "+1 206 555 ",
                    pc.utf8_lpad(pc.cast(pc.remainder(event_no, 10_000), pa.string()), 4, "0"),
                    "",
                ),
                "event": pa.repeat(pa.scalar("CompletePayment"), n),
                "event_id": pc.binary_join_element_wise("order-", text, ""),
                "timestamp": stamps,
                "currency": pa.repeat(pa.scalar("USD"), n),
                "event_channel": pa.repeat(pa.scalar("in_store"), n),
                "content_id": pc.binary_join_element_wise("sku-", pc.cast(item, pa.string()), ""),
                "price": pc.add(pc.cast(item, pa.float64()), 9.99),
                "quantity": pa.repeat(pa.scalar(1, pa.int64()), n),
            }
        )


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


async def _run(seed: dict[str, Any], events: int, work: Path, in_flight: int) -> dict[str, Any]:
    settings = ResolvedOfflineEventsSettings(
        advertiser_id=seed["advertiser_ids"][0], event_set_id=seed["event_set_id"]
    )
    marks: dict[str, float] = {}

    def progress(totals: Any) -> None:
        marks.setdefault("first_confirmed", time.perf_counter())

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
                source_batches(events),
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
        "first_batch_seconds": round(marks.get("first_confirmed", start) - start, 2),
        "sent": totals.sent,
        "rejected": dict(totals.rejected),
        "requests": totals.requests,
        "in_flight": in_flight,
    }


def main() -> None:
    """Parse arguments, run the benchmark, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()
    with emulator_process() as (seed, emulator), tempfile.TemporaryDirectory() as tmp:
        admin = EmulatorAdmin(seed["root_url"], seed["admin_token"])
        try:
            admin.set_rate_limit("events", qps=100_000, qpm=10_000_000, qpd=1_000_000_000)
        finally:
            admin.close()
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        emu_before = emulator.cpu_times()
        with _PeakRss(emulator) as emulator_rss:
            report = asyncio.run(_run(seed, args.events, Path(tmp), args.in_flight))
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        emu_after = emulator.cpu_times()
        # CPU seconds say what the work costs independently of other load on a shared machine.
        own_cpu = (own_after.ru_utime - own_before.ru_utime) + (own_after.ru_stime - own_before.ru_stime)
        emu_cpu = (emu_after.user - emu_before.user) + (emu_after.system - emu_before.system)
        report["cpu_seconds"] = round(own_cpu, 2)
        report["emulator_cpu_seconds"] = round(emu_cpu, 2)
        report["cpu_us_per_event"] = round(own_cpu / max(1, report["events"]) * 1e6, 1)
        report["emulator_cpu_us_per_event"] = round(emu_cpu / max(1, report["events"]) * 1e6, 1)
        report["load_average_1m"] = round(psutil.getloadavg()[0], 2)
        report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        report["emulator_peak_rss_mib"] = round(emulator_rss.peak / 2**20)
        report["cpus"] = psutil.cpu_count()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
