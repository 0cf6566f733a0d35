"""Step (5) of a delivery: send the events in batches, a few requests in flight, as chunks are grouped."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Final

import pyarrow as pa

from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.destinations.tiktok.events.event_set import check_event_set
from ttsync.destinations.tiktok.events.ledger_filter import filter_chunk
from ttsync.destinations.tiktok.events.sender import EventSender
from ttsync.destinations.tiktok.events.source import EventOptions, EventRunResult, GroupedEvents, QueryEvents
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.ledger import Ledger
from ttsync.events.outcomes import EventTotals, OutcomeWriter, write_totals
from ttsync.events.payload import ReadyEvents
from ttsync.events.reasons import Outcome, RejectReason

MAX_BATCH: Final = 1_000  # ref §3.1: more than 1,000 events and TikTok rejects the whole request

ProgressCallback = Callable[[EventTotals], None]


async def deliver_events(
    client: AsyncTikTokClient,
    batches: Iterable[pa.RecordBatch],
    *,
    settings: ResolvedOfflineEventsSettings,
    key_column: str | None,
    run_dir: Path,
    ledger: Ledger,
    options: EventOptions | None = None,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
    run_id: str | None = None,
    batch_size: int = MAX_BATCH,
    max_in_flight: int = 4,
) -> EventRunResult:
    """Send the query's events to `event/track/` once each; see the module docstring for the steps.

    Raises the client's `TikTokError` subclasses for request-level failures (after the client's own retries)
    and `EventSetNotFoundError` / `EventColumnsError` before anything is sent.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH} (ref §3.1)")
    await check_event_set(client, settings)
    events = QueryEvents(batches, settings, key_column, options or EventOptions(), now)
    return await deliver_staged(
        client,
        events,
        settings=settings,
        run_dir=run_dir,
        ledger=ledger,
        progress=progress,
        run_id=run_id,
        batch_size=batch_size,
        max_in_flight=max_in_flight,
    )


async def deliver_staged(
    client: AsyncTikTokClient,
    events: GroupedEvents,
    *,
    settings: ResolvedOfflineEventsSettings,
    run_dir: Path,
    ledger: Ledger,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    batch_size: int = MAX_BATCH,
    max_in_flight: int = 4,
) -> EventRunResult:
    """Send events grouped already (by `deliver_events`, or by Spark's executors: `ttsync.spark.events`) once
    each; steps (4) and (5) of the module docstring. The caller checks the event set (`check_event_set`)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH} (ref §3.1)")
    with _relaxed_gc(), _system_memory_pool():
        return await _deliver(
            client,
            events,
            settings=settings,
            run_dir=run_dir,
            ledger=ledger,
            progress=progress,
            run_id=run_id,
            batch_size=batch_size,
            max_in_flight=max_in_flight,
        )


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    """Collect cyclic garbage rarely while a delivery runs, and restore the thresholds afterwards.

    A delivery keeps hundreds of thousands of small acyclic objects alive (events waiting for their batch);
    with the default thresholds every young-generation collection walks them again. Measured in
    bench/events.py, that was the largest single cost (pydantic and the event loop allocate constantly).
    Reference counting still frees everything as usual; only cycle detection runs less often.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(200_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class _SystemMemoryPool:
    """Allocate Arrow buffers with the C library's malloc while any delivery of this process runs.

    Chunks are validated and grouped in a worker thread and their buffers mostly freed on the event loop's
    thread. Arrow's default pool (mimalloc) keeps such cross-thread frees resident for a while: measured in
    bench/events.py, peak RSS 497 against 454 MiB at 1M events and 573 against 513 MiB at 3M, at no extra
    CPU. Buffers remember their pool, so ones allocated before or after are freed correctly.

    Arrow's default pool is process-wide, so the switch is counted: the first delivery to start sets it and
    the last one to end restores the pool that was there before (deliveries may overlap, on one event loop or
    in several threads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._previous: pa.MemoryPool | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        system = pa.system_memory_pool()
        with self._lock:
            if self._users == 0:
                previous = pa.default_memory_pool()
                if previous.backend_name != system.backend_name:
                    self._previous = previous
                    pa.set_memory_pool(system)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                previous, restore = self._previous, self._users == 0
                if restore:
                    self._previous = None
                    if previous is not None:
                        pa.set_memory_pool(previous)
            if restore:
                system.release_unused()  # hand the runs' freed memory back to the OS (malloc_trim)


_system_memory_pool = _SystemMemoryPool()


async def _deliver(
    client: AsyncTikTokClient,
    events: GroupedEvents,
    *,
    settings: ResolvedOfflineEventsSettings,
    run_dir: Path,
    ledger: Ledger,
    progress: ProgressCallback | None,
    run_id: str | None,
    batch_size: int,
    max_in_flight: int,
) -> EventRunResult:
    sender = EventSender(client, settings, ledger, run_id)
    totals = sender.totals
    writer = OutcomeWriter(run_dir)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(ready: ReadyEvents) -> None:
        confirmed, rejected = await sender.send(ready)
        writer.add_arrow(confirmed.row_keys(), Outcome.SENT, events=confirmed.row_events())
        for event, message in rejected:
            writer.add(
                event.row_keys,
                Outcome.REJECTED,
                RejectReason.REJECTED_BY_TIKTOK.value,
                message,
                event=(event.event, event.event_id),
            )
        if progress is not None:
            progress(totals)

    pending = ReadyEvents.empty()

    async def queue(batch: pa.RecordBatch | None, last: bool = False) -> None:
        nonlocal pending
        if batch is not None:
            fresh = filter_chunk(batch, totals, writer, ledger, sender.namespace)
            pending = ReadyEvents.concat([pending, fresh])
        start = 0
        while len(pending) - start >= batch_size or (last and start < len(pending)):
            await _launch(send(pending.slice(start, start + batch_size)), in_flight, max_in_flight)
            start += batch_size
        pending = pending.slice(start)

    # Validation and grouping run in a worker thread (Arrow releases the GIL), so the requests in flight are
    # confirmed and recorded, and new ones start, while the next chunk is prepared. Always the same thread:
    # glibc gives each thread that allocates its own heap (arena), and each keeps the free memory of its
    # largest chunk resident. The event loop's default pool handed the chunks to whichever of its threads was
    # idle (two at 300k events, more over a long run), so peak RSS grew with the number of events.
    grouping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttsync-events-grouping")
    loop = asyncio.get_running_loop()
    try:
        trim = _HeapTrim()
        for chunk in events.chunks():
            await queue(await loop.run_in_executor(grouping, events.group, chunk))
            totals.rows = events.rows
            trim.after_chunk()
        await queue(events.finish(), last=True)
        await _drain(in_flight)
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    finally:
        grouping.shutdown(wait=True)
        writer.close()
        events.cleanup()
        totals.rows = events.rows
        write_totals(run_dir, totals)
    if progress is not None:
        progress(totals)
    return EventRunResult(totals, writer.path, run_dir / "event_totals.json", events.report(), events.ignored)


class _HeapTrim:
    """Hand the C library's free memory back to the OS while the process is over its memory budget.

    glibc keeps freed chunk buffers resident in its heaps: without this, peak RSS grew with the number of
    events (its free-but-resident heap from 91 to 154 MiB over 10M events). A trim (malloc_trim, through
    Arrow's system pool) walks the whole heap, tens of milliseconds, so it runs only while resident memory
    is over `BUDGET` and at most every `EVERY` chunks: a delivery that stays under the budget (1M events take
    ~450 MiB) never pays for it, and a long one pays a bounded share (measured in bench/events.py).
    """

    BUDGET = 448 * 2**20
    EVERY = 4

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._wait = 0

    def resident(self) -> int | None:
        """This process's resident memory in bytes (Linux; None elsewhere, where nothing is trimmed)."""
        try:
            with open("/proc/self/statm", "rb") as statm:
                return int(statm.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return None

    def after_chunk(self) -> bool:
        """Trim if over the budget and `EVERY` chunks have passed since the last trim; whether it trimmed."""
        if self._wait > 0:
            self._wait -= 1
            return False
        resident = self.resident()
        if resident is None or resident < self.BUDGET:
            return False
        pa.system_memory_pool().release_unused()
        self._wait = self.EVERY - 1
        return True


async def _launch(coro: Awaitable[None], in_flight: set[asyncio.Task[None]], limit: int) -> None:
    while len(in_flight) >= limit:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            in_flight.discard(task)
            task.result()  # re-raise a request-level failure now
    in_flight.add(asyncio.ensure_future(coro))


async def _drain(in_flight: set[asyncio.Task[None]]) -> None:
    while in_flight:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            in_flight.discard(task)
            task.result()
