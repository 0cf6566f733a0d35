"""`plan_events`: everything a delivery does except sending (`ttsync run ORCH --plan`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from ttsync.destinations.tiktok.events.ledger_filter import filter_chunk
from ttsync.destinations.tiktok.events.source import EventOptions, EventRunResult, GroupedEvents, QueryEvents
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.events.outcomes import EventTotals, OutcomeWriter, write_totals
from ttsync.events.reasons import Outcome


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
    events = QueryEvents(batches, settings, key_column, options or EventOptions(), now)
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
            ready = filter_chunk(batch, totals, writer, ledger, namespace)
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
