"""Where a delivery's grouped events come from (`GroupedEvents`): the query's rows, validated and grouped here
chunk by chunk (`QueryEvents`), or events Spark's executors grouped already (`ttsync.spark.events`); with the
options and rules of a delivery and what it returns (`EventRunResult`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import pyarrow as pa

from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.columns import plan_columns
from ttsync.events.grouping import EventGrouper
from ttsync.events.outcomes import EventTotals
from ttsync.events.seen_keys import SeenKeys
from ttsync.events.validate import EventRules, RowValidator
from ttsync.identity import MatchReport
from ttsync.identity.rowkeys import KeyHasher

# Rows validated and grouped at a time. The first chunk is small, so the first batch goes out within a second
# of the first rows. Later ones are large enough that the fixed cost of a chunk (some 100 Arrow calls) stays
# small, and small enough that its intermediate buffers are reused rather than mapped afresh (measured in
# bench/events.py: grouping costs ~3 µs per row at 25,000 rows a chunk, ~5 µs at 50,000, ~10 µs at 100,000).
FIRST_CHUNK_ROWS: Final = 5_000
CHUNK_ROWS: Final = 25_000


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
    """Where a delivery's grouped events come from: the query's rows grouped here (`QueryEvents`), or events
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


class QueryEvents:
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
        self.seen = SeenKeys()  # row keys of earlier chunks (a key used again is a `duplicate_row_key`)
        self.grouper = EventGrouper(seen=self.seen)
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
        """Delete the row keys kept on disk (nothing else is staged)."""
        self.seen.close()
