"""Deliver offline events: stage and validate, filter against the ledger, send in batches, bisect rejects.

    result = await deliver_events(client, batches, settings=settings, key_column="row_key",
                                  run_dir=run_dir, ledger=ledger)
    result.totals.to_dict()   # sent, duplicate_skipped, rejected by reason, ...

`plan_events` does the same without sending (`ttsync run ORCH --plan`).

Order of work: (1) check the event set exists (`offline/get/`), (2) validate every row and stage the
prepared rows, (3) group rows into events in query order, (4) drop events already in the ledger, (5) send
batches of up to 1,000 (a few in flight), recording each batch in the ledger right after TikTok confirmed
it. Request-level failures (auth, permission, not found, rate limit budget exhausted) stop the delivery with
the client's typed error; a 40002 about the events themselves is bisected down to the bad events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.destinations.tiktok.client import (
    AsyncTikTokClient,
    ClientValidationError,
    InvalidRequestError,
    NotFoundError,
)
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.columns import plan_columns
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.events.outcomes import EventTotals, OutcomeWriter, scrub_message, write_totals
from ttsync.events.payload import GroupedEvent, ReadyEvents, split_events
from ttsync.events.reasons import Outcome, RejectReason
from ttsync.events.stage import Stage
from ttsync.events.validate import EventRules, RowValidator
from ttsync.identity import MatchReport
from ttsync.identity.rowkeys import KeyHasher

MAX_BATCH: Final = 1_000  # ref §3.1: more than 1,000 events and TikTok rejects the whole request
# 40002 messages name the bad event as `data.N.field` (Events API 2.0) or `Batch.N.field` (ref §3.4).
_EVENT_INDEX: Final = re.compile(r"\b(?:data|batch)\.(\d+)\b", re.IGNORECASE)
# A 40002 about these request-level fields is not about any one event: bisecting would not help.
_REQUEST_FIELDS: Final = re.compile(r"\b(event_source_id|event_source|partner_name|test_event_code)\b")
_BISECT_CODES: Final = frozenset({40000, 40002, 40062})

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


class StagedEvents(Protocol):
    """Validated rows grouped into events, ready for delivery: this process's stage (`Stage` and DuckDB), or
    Spark's executors (`ttsync.spark.events`)."""

    @property
    def rows(self) -> int:
        """Warehouse rows validated."""

    @property
    def ignored(self) -> tuple[str, ...]:
        """Query columns that make no event field."""

    def events(self, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """One row per event (`eventsql.EVENT_COLUMNS`); an optional boolean column `in_ledger` marks events
        already found in the ledger (never looked up again)."""

    def report(self) -> MatchReport:
        """Identity's match report over every row."""

    def cleanup(self) -> None:
        """Delete what staging wrote (hashes and event fields)."""


@dataclass
class _Staged:
    stage: Stage
    validator: RowValidator
    ignored: tuple[str, ...]

    @property
    def rows(self) -> int:
        return self.stage.rows

    def events(self, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        return self.stage.rows_by_event(chunk_rows=chunk_rows)

    def report(self) -> MatchReport:
        return self.validator.report()

    def cleanup(self) -> None:
        self.stage.cleanup()


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


def _stage(
    batches: Iterable[pa.RecordBatch],
    *,
    settings: ResolvedOfflineEventsSettings,
    key_column: str | None,
    run_dir: Path,
    options: EventOptions,
    now: datetime | None,
) -> _Staged:
    rules = event_rules(settings, options)
    derive = rules.derive_event_id
    stage = Stage(run_dir)
    validator: RowValidator | None = None
    ignored: tuple[str, ...] = ()
    for batch in batches:
        if validator is None:
            plan = plan_columns(
                batch.schema.names,
                key_column=key_column,
                attribute_mapping=options.attribute_mapping,
                derive_event_id=derive,
            )
            ignored = plan.ignored
            validator = RowValidator(
                plan,
                rules,
                key_column=key_column,
                now=now or datetime.now(UTC),
                key_hasher=options.key_hasher,
            )
        stage.add(validator.process(batch))
    if validator is None:
        raise ValueError("the query returned no batches (not even an empty one with its columns)")
    return _Staged(stage, validator, ignored)


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
    options = options or EventOptions()
    staged = _stage(
        batches, settings=settings, key_column=key_column, run_dir=run_dir, options=options, now=now
    )
    return plan_staged(staged, settings=settings, run_dir=run_dir, ledger=ledger)


def plan_staged(
    staged: StagedEvents, *, settings: ResolvedOfflineEventsSettings, run_dir: Path, ledger: Ledger
) -> EventRunResult:
    """`plan_events` over events staged already (by Spark's executors, `ttsync.spark.events`)."""
    namespace = ledger_namespace(settings.event_set_id, settings.test_event_code)
    totals = EventTotals(rows=staged.rows)
    writer = OutcomeWriter(run_dir)
    try:
        for batch in staged.events(20_000):
            ready = _filter_chunk(batch, totals, writer, ledger, namespace)
            writer.add_arrow(ready.row_keys(), Outcome.PLANNED, events=ready.row_events())
            totals.planned += len(ready)
    finally:
        writer.close()
        staged.cleanup()
    return EventRunResult(totals, writer.path, write_totals(run_dir, totals), staged.report(), staged.ignored)


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
    options = options or EventOptions()
    await check_event_set(client, settings)
    staged = _stage(
        batches, settings=settings, key_column=key_column, run_dir=run_dir, options=options, now=now
    )
    return await deliver_staged(
        client,
        staged,
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
    staged: StagedEvents,
    *,
    settings: ResolvedOfflineEventsSettings,
    run_dir: Path,
    ledger: Ledger,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    batch_size: int = MAX_BATCH,
    max_in_flight: int = 4,
) -> EventRunResult:
    """Send events staged already (by `deliver_events`, or by Spark's executors: `ttsync.spark.events`) once
    each: check the event set exists first (`check_event_set`). Steps (4) and (5) of the module docstring."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH} (ref §3.1)")
    with _relaxed_gc():
        return await _deliver(
            client,
            staged,
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
    staged: StagedEvents,
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
    totals.rows = staged.rows
    writer = OutcomeWriter(run_dir)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(events: ReadyEvents) -> None:
        confirmed, rejected = await sender.send(events)
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

    try:
        pending = ReadyEvents.empty()
        for chunk in staged.events(5_000):
            fresh = _filter_chunk(chunk, totals, writer, ledger, sender.namespace)
            pending = ReadyEvents.concat([pending, fresh])
            start = 0
            while len(pending) - start >= batch_size:
                await _launch(send(pending.slice(start, start + batch_size)), in_flight, max_in_flight)
                start += batch_size
            pending = pending.slice(start)
            # Let finished requests be recorded and new ones start between chunks, so TikTok works on the
            # batches in flight while this process builds the next ones.
            await asyncio.sleep(0)
        if pending:
            await _launch(send(pending), in_flight, max_in_flight)
        await _drain(in_flight)
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    finally:
        writer.close()
        staged.cleanup()
        write_totals(run_dir, totals)
    if progress is not None:
        progress(totals)
    return EventRunResult(totals, writer.path, run_dir / "event_totals.json", staged.report(), staged.ignored)


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
    chunk: pa.RecordBatch,
    totals: EventTotals,
    writer: OutcomeWriter,
    ledger: Ledger,
    namespace: str,
) -> ReadyEvents:
    """Record rejected events; drop events already in the ledger; return the events to send.

    Events marked `in_ledger` (Spark's anti-join) are skipped without a lookup; the others are looked up in
    the ledger (a run that recorded them since Spark read the ledger is caught here)."""
    ready, rejected = split_events(chunk)
    totals.events += len(ready) + sum(rejected.counts.values())
    totals.rejected.update(rejected.counts)
    writer.add_arrow(rejected.row_keys, Outcome.REJECTED, reasons=rejected.reasons)
    keys = ready.keys()
    known = [False] * len(keys)
    if "in_ledger" in chunk.schema.names:
        flags = chunk.filter(pc.is_null(chunk.column("reason"))).column("in_ledger")
        known = pc.fill_null(flags, False).to_pylist()
    done = ledger.accepted(namespace, [key for key, flag in zip(keys, known, strict=True) if not flag])
    if not done and not any(known):
        return ready
    seen = pa.array([flag or key in done for key, flag in zip(keys, known, strict=True)], pa.bool_())
    skipped = ready.filter(seen)
    writer.add_arrow(skipped.row_keys(), Outcome.DUPLICATE_SKIPPED, events=skipped.row_events())
    totals.duplicate_skipped += len(skipped)
    return ready.filter(pc.invert(seen))


class EventSender:
    """Sends one batch; on a 40002 about the events, isolates the bad ones and sends the rest."""

    def __init__(
        self,
        client: AsyncTikTokClient,
        settings: ResolvedOfflineEventsSettings,
        ledger: Ledger,
        run_id: str | None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.ledger = ledger
        self.run_id = run_id
        self.namespace = ledger_namespace(settings.event_set_id, settings.test_event_code)
        self.totals = EventTotals()

    async def send(self, events: ReadyEvents) -> tuple[ReadyEvents, list[tuple[GroupedEvent, str]]]:
        """Send `events`; returns (confirmed, rejected with TikTok's scrubbed message)."""
        try:
            await self._post(events)
        except InvalidRequestError as exc:
            if not _is_about_events(exc):
                raise
            return await self._isolate(events, exc)
        return events, []

    async def _post(self, events: ReadyEvents) -> None:
        self.totals.requests += 1
        await self.client.track_events_json(
            event_source=self.settings.event_source,
            event_source_id=self.settings.event_set_id,
            data_json=events.data_json(),
            test_event_code=self.settings.test_event_code,
            # Only a partner name the user registered with TikTok (40063 otherwise, ref §9); None omits it.
            partner_name=self.settings.partner_name,
            deduplicable=True,  # every event has an event_id (validation rejects those without)
        )
        # Only now is the batch TikTok's: record it before anything else can fail.
        self.ledger.record(self.namespace, events.keys(), run_id=self.run_id)
        self.totals.sent += len(events)

    async def _isolate(
        self, events: ReadyEvents, exc: InvalidRequestError
    ) -> tuple[ReadyEvents, list[tuple[GroupedEvent, str]]]:
        message = scrub_message(exc.message)
        if len(events) == 1:
            self._reject(1)
            return ReadyEvents.empty(), [(events.event(0), message)]
        index = _event_index(exc.message)
        if index is not None and index < len(events):
            # TikTok named an event (`data.N` or `Batch.N`): a hint, checked rather than trusted, since the
            # format of these messages varies and some name no event at all (ref §3.4, §9). Send the others
            # first (they may hold more bad ones): if they all go, the named event alone failed the batch;
            # if not, the named event is sent alone to decide it.
            confirmed, rejected = await self.send(events.without(index))
            if not rejected:
                self._reject(1)
                return confirmed, [(events.event(index), message)]
            alone_ok, alone_bad = await self.send(events.slice(index, index + 1))
            return ReadyEvents.concat([confirmed, alone_ok]), [*alone_bad, *rejected]
        # No usable index (e.g. "Invalid value for event_id: ..." names only the field): bisect.
        middle = len(events) // 2
        left_ok, left_bad = await self.send(events.slice(0, middle))
        right_ok, right_bad = await self.send(events.slice(middle))
        return ReadyEvents.concat([left_ok, right_ok]), left_bad + right_bad

    def _reject(self, count: int) -> None:
        self.totals.rejected[RejectReason.REJECTED_BY_TIKTOK.value] += count


def _is_about_events(exc: InvalidRequestError) -> bool:
    if isinstance(exc, ClientValidationError):
        return _event_index(exc.message) is not None
    if exc.code not in _BISECT_CODES:
        return False
    return _event_index(exc.message) is not None or _REQUEST_FIELDS.search(exc.message) is None


def _event_index(message: str) -> int | None:
    match = _EVENT_INDEX.search(message)
    return int(match.group(1)) if match else None
