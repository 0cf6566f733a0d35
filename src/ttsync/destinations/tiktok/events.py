"""Deliver offline events: validate and group chunk by chunk, filter against the ledger, send in batches.

    result = await deliver_events(client, batches, settings=settings, key_column="row_key",
                                  run_dir=run_dir, ledger=ledger)
    result.totals.to_dict()   # sent, duplicate_skipped, rejected by reason, ...

`plan_events` does the same without sending (`ttsync run ORCH --plan`).

Order of work: (1) check the event set exists (`offline/get/`); then, chunk by chunk as the query's rows
arrive, (2) validate the rows, (3) group them into events (`ttsync.events.grouping`: an event's rows come
together in the query result), (4) drop events already in the ledger, (5) send batches of up to 1,000 (a few
in flight), recording each batch in the ledger right after TikTok confirmed it. Sending starts with the first
chunk: nothing is staged. Request-level failures (auth, permission, not found, rate limit budget exhausted)
stop the delivery with the client's typed error; a 40002 about the events themselves is bisected down to the
bad events (`event_sender.py`).

On a `spark` source, steps (2)-(4) run on Spark's executors instead (`ttsync.spark.events`): `deliver_staged`
and `plan_staged` take the events they grouped, each marked `in_ledger` or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.destinations.tiktok.client import AsyncTikTokClient, NotFoundError
from ttsync.destinations.tiktok.event_sender import EventSender
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.columns import plan_columns
from ttsync.events.grouping import EventGrouper
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.events.outcomes import EventTotals, OutcomeWriter, write_totals
from ttsync.events.payload import ReadyEvents, split_events
from ttsync.events.reasons import Outcome, RejectReason
from ttsync.events.validate import EventRules, RowValidator
from ttsync.identity import MatchReport
from ttsync.identity.rowkeys import KeyHasher

__all__ = [
    "MAX_BATCH",
    "EventOptions",
    "EventRunResult",
    "EventSender",
    "EventSetNotFoundError",
    "GroupedEvents",
    "check_event_set",
    "deliver_events",
    "deliver_staged",
    "event_rules",
    "plan_events",
    "plan_staged",
]

MAX_BATCH: Final = 1_000  # ref §3.1: more than 1,000 events and TikTok rejects the whole request
# Rows validated and grouped at a time. The first chunk is small, so the first batch goes out within a second
# of the first rows. Later ones are large enough that the fixed cost of a chunk (some 100 Arrow calls) stays
# small, and small enough that its intermediate buffers are reused rather than mapped afresh (measured in
# bench/events.py: grouping costs ~3 µs per row at 25,000 rows a chunk, ~5 µs at 50,000, ~10 µs at 100,000).
FIRST_CHUNK_ROWS: Final = 5_000
CHUNK_ROWS: Final = 25_000

ProgressCallback = Callable[[EventTotals], None]


class EventSetNotFoundError(NotFoundError):
    """The destination's event set does not exist for the advertiser (resolution `event_set_not_found`)."""


@dataclass(frozen=True)
class EventOptions:
    """Data-template and orchestration choices beyond `ResolvedOfflineEventsSettings`."""

    attribute_mapping: Mapping[str, str] = field(default_factory=dict)
    derive_event_id: bool = False
    default_region: str | None = None
    # Keyed hashing of identifier-looking row keys and event ids (the workspace key; see identity/rowkeys.py).
    key_hasher: KeyHasher | None = None


@dataclass
class EventRunResult:
    """What a delivery or plan did: totals, the per-row outcome file, identity's match report."""

    totals: EventTotals
    outcomes_path: Path
    totals_path: Path
    match_report: MatchReport
    ignored_columns: tuple[str, ...] = ()


def event_rules(settings: ResolvedOfflineEventsSettings, options: EventOptions) -> EventRules:
    """The validation rules of one delivery, from the destination's settings and the orchestration's options."""
    # `derive_event_id` is a data-template setting; read it from the settings once the workspace model has it.
    derive = options.derive_event_id or bool(getattr(settings, "derive_event_id", False))
    return EventRules(
        event_set_id=settings.event_set_id,
        event_source=settings.event_source,
        timezone=settings.timezone,
        derive_event_id=derive,
        default_region=options.default_region,
    )


class GroupedEvents(Protocol):
    """Where a delivery's grouped events come from: the query's rows grouped here (`_Events`), or events
    Spark's executors grouped already (`ttsync.spark.events`)."""

    rows: int
    ignored: tuple[str, ...]

    def chunks(self) -> Iterator[pa.RecordBatch]:
        """Units of work, in order."""

    def group(self, chunk: pa.RecordBatch) -> pa.RecordBatch | None:
        """The events (`grouping.EVENT_COLUMNS`) one chunk completes, if any; an optional boolean column
        `in_ledger` marks events found in the ledger already (skipped without a lookup)."""

    def finish(self) -> pa.RecordBatch | None:
        """The last events, once every chunk is grouped."""

    def report(self) -> MatchReport:
        """Identity's match report over every row."""

    def cleanup(self) -> None:
        """Delete what grouping left behind."""


class _Events:
    """The query's rows -> batches of grouped events (`grouping.EVENT_COLUMNS`), chunk by chunk."""

    def __init__(
        self,
        batches: Iterable[pa.RecordBatch],
        settings: ResolvedOfflineEventsSettings,
        key_column: str | None,
        options: EventOptions,
        now: datetime | None,
    ) -> None:
        self.batches = batches
        self.rules = event_rules(settings, options)
        self.derive = self.rules.derive_event_id
        self.key_column = key_column
        self.options = options
        self.now = now or datetime.now(UTC)
        self.validator: RowValidator | None = None
        self.ignored: tuple[str, ...] = ()
        self.grouper = EventGrouper()
        self.rows = 0

    def chunks(self) -> Iterator[pa.RecordBatch]:
        """Source batches cut to at most `CHUNK_ROWS` rows, the very first to `FIRST_CHUNK_ROWS` (an empty
        batch passes as it is: its columns are checked)."""
        size = FIRST_CHUNK_ROWS
        for batch in self.batches:
            start = 0
            while True:
                yield batch.slice(start, size) if start or batch.num_rows > size else batch
                start += size
                size = CHUNK_ROWS
                if start >= batch.num_rows:
                    break

    def group(self, chunk: pa.RecordBatch) -> pa.RecordBatch | None:
        """Validate and group one chunk; the events complete so far, if any."""
        if self.validator is None:
            plan = plan_columns(
                chunk.schema.names,
                key_column=self.key_column,
                attribute_mapping=self.options.attribute_mapping,
                derive_event_id=self.derive,
            )
            self.ignored = plan.ignored
            self.validator = RowValidator(
                plan, self.rules, key_column=self.key_column, now=self.now, key_hasher=self.options.key_hasher
            )
        self.rows += chunk.num_rows
        return self.grouper.add(self.validator.process(chunk))

    def finish(self) -> pa.RecordBatch | None:
        """The last events (carried over from the last chunk)."""
        if self.validator is None:
            raise ValueError("the query returned no batches (not even an empty one with its columns)")
        return self.grouper.finish()

    def report(self) -> MatchReport:
        """Identity's match report over every row so far."""
        assert self.validator is not None
        return self.validator.report()

    def cleanup(self) -> None:
        """Nothing to delete: nothing is staged."""


def plan_events(
    batches: Iterable[pa.RecordBatch],
    *,
    settings: ResolvedOfflineEventsSettings,
    key_column: str | None,
    run_dir: Path,
    ledger: Ledger,
    options: EventOptions | None = None,
    now: datetime | None = None,
) -> EventRunResult:
    """Everything a delivery does except sending: counts by outcome (`planned` instead of `sent`)."""
    events = _Events(batches, settings, key_column, options or EventOptions(), now)
    return plan_staged(events, settings=settings, run_dir=run_dir, ledger=ledger)


def plan_staged(
    events: GroupedEvents, *, settings: ResolvedOfflineEventsSettings, run_dir: Path, ledger: Ledger
) -> EventRunResult:
    """`plan_events` over events from elsewhere (Spark's executors: `ttsync.spark.events`)."""
    namespace = ledger_namespace(settings.event_set_id, settings.test_event_code)
    totals = EventTotals()
    writer = OutcomeWriter(run_dir)

    def plan(batch: pa.RecordBatch | None) -> None:
        if batch is not None:
            ready = _filter_chunk(batch, totals, writer, ledger, namespace)
            writer.add_arrow(ready.row_keys(), Outcome.PLANNED, events=ready.row_events())
            totals.planned += len(ready)

    try:
        for chunk in events.chunks():
            plan(events.group(chunk))
        plan(events.finish())
    finally:
        writer.close()
        events.cleanup()
    totals.rows = events.rows
    return EventRunResult(totals, writer.path, write_totals(run_dir, totals), events.report(), events.ignored)


async def check_event_set(client: AsyncTikTokClient, settings: ResolvedOfflineEventsSettings) -> None:
    """Raise `EventSetNotFoundError` unless the offline event set exists for the advertiser (ref §3.5).

    Only offline event sets can be looked up with `offline/get/`; web (pixel) and CRM sources are not checked.
    """
    if settings.event_source != "offline":
        return
    endpoint = "offline/get/"
    try:
        result = await client.get_offline_event_sets(
            settings.advertiser_id, event_set_ids=[settings.event_set_id]
        )
        found = any(s.event_set_id == settings.event_set_id for s in result.event_set_list)
    except NotFoundError as exc:
        if exc.resolution_key == "advertiser_not_found":
            raise
        found = False
    if not found:
        raise EventSetNotFoundError(
            f"offline event set {settings.event_set_id} does not exist for advertiser {settings.advertiser_id}: "
            "create it in TikTok Events Manager (Assets > Events > Offline) or fix `event_set_id`",
            code=None,
            endpoint=endpoint,
            resolution_key="event_set_not_found",
        )


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
    events = _Events(batches, settings, key_column, options or EventOptions(), now)
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
    with _relaxed_gc():
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
            fresh = _filter_chunk(batch, totals, writer, ledger, sender.namespace)
            pending = ReadyEvents.concat([pending, fresh])
        start = 0
        while len(pending) - start >= batch_size or (last and start < len(pending)):
            await _launch(send(pending.slice(start, start + batch_size)), in_flight, max_in_flight)
            start += batch_size
        pending = pending.slice(start)

    try:
        for chunk in events.chunks():
            # Validation and grouping run in a worker thread (Arrow releases the GIL), so the requests in flight
            # are confirmed and recorded, and new ones start, while the next chunk is prepared.
            await queue(await asyncio.to_thread(events.group, chunk))
            totals.rows = events.rows
        await queue(events.finish(), last=True)
        await _drain(in_flight)
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    finally:
        writer.close()
        events.cleanup()
        totals.rows = events.rows
        write_totals(run_dir, totals)
    if progress is not None:
        progress(totals)
    return EventRunResult(totals, writer.path, run_dir / "event_totals.json", events.report(), events.ignored)


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


def _filter_chunk(
    batch: pa.RecordBatch,
    totals: EventTotals,
    writer: OutcomeWriter,
    ledger: Ledger,
    namespace: str,
) -> ReadyEvents:
    """Record rejected events; drop events already in the ledger; return the events to send.

    Events marked `in_ledger` (Spark's anti-join) are skipped without a lookup; the others are looked up (a
    run that recorded them since Spark read the ledger is caught here)."""
    ready, rejected = split_events(batch)
    totals.events += len(ready) + sum(rejected.counts.values())
    totals.rejected.update(rejected.counts)
    writer.add_arrow(rejected.row_keys, Outcome.REJECTED, reasons=rejected.reasons)
    if not len(ready):
        return ready
    marked = None
    if "in_ledger" in batch.schema.names:
        marked = pc.fill_null(batch.filter(pc.is_null(batch.column("reason"))).column("in_ledger"), False)
    unknown = ready if marked is None else ready.filter(pc.invert(marked))
    done = ledger.accepted_json(namespace, unknown.keys_json()) if len(unknown) else set()
    if not done and (marked is None or not pc.any(marked).as_py()):
        return ready
    seen = ready.is_in(done) if marked is None else pc.or_(ready.is_in(done), marked)
    skipped = ready.filter(seen)
    writer.add_arrow(skipped.row_keys(), Outcome.DUPLICATE_SKIPPED, events=skipped.row_events())
    totals.duplicate_skipped += len(skipped)
    return ready.filter(pc.invert(seen))
