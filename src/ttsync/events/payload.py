"""Events ready to send, kept as Arrow columns; each event's JSON text comes from `grouping.py`.

`split_events` turns one batch of grouped events into the events to send (`ReadyEvents`) and the rejected
ones (`RejectedEvents`), without a Python object per event. `ReadyEvents` is what a request is built from:
`data_json()` joins the events' JSON texts into the `data` array of `event/track/` (ref §3.1). Individual
`GroupedEvent` objects are made only where one event matters on its own (a row TikTok rejected, tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.events import jsontext

READY_SCHEMA: Final = pa.schema(
    [
        ("event", pa.string()),
        ("event_id", pa.string()),
        ("row_keys", pa.list_(pa.string())),
        ("json", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class GroupedEvent:
    """One event ready to send, with the warehouse rows it came from and its `data[]` item as JSON text."""

    event: str
    event_id: str
    row_keys: list[str]
    json_text: str

    @property
    def payload(self) -> dict[str, Any]:
        """The `data[]` item, parsed."""
        parsed: dict[str, Any] = json.loads(self.json_text)
        return parsed

    @classmethod
    def from_payload(cls, row_keys: list[str], payload: dict[str, Any]) -> GroupedEvent:
        """An event from a ready-made `data[]` item (which must hold `event` and `event_id`)."""
        return cls(
            payload["event"], payload["event_id"], row_keys, json.dumps(payload, separators=(",", ":"))
        )


Rejected = tuple[list[str], str]
LEDGER_KEY: Final = "ledger_key"
LEDGER_TAIL: Final = "ledger_tail"


class ReadyEvents:
    """A run of events to send: Arrow columns `READY_SCHEMA`, sliced and joined without per-event objects."""

    __slots__ = ("table",)

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    @classmethod
    def empty(cls) -> ReadyEvents:
        """No events."""
        return cls(READY_SCHEMA.empty_table())

    @classmethod
    def of(cls, events: Sequence[GroupedEvent]) -> ReadyEvents:
        """Events from `GroupedEvent` objects (tests, and the few events handled one by one)."""
        return cls(
            pa.table(
                [
                    pa.array([e.event for e in events], pa.string()),
                    pa.array([e.event_id for e in events], pa.string()),
                    pa.array([e.row_keys for e in events], pa.list_(pa.string())),
                    pa.array([e.json_text for e in events], pa.string()),
                ],
                schema=READY_SCHEMA,
            )
        )

    @classmethod
    def concat(cls, parts: Iterable[ReadyEvents]) -> ReadyEvents:
        """Several runs as one (their ledger keys too, when every run has them)."""
        tables = [p.table for p in parts if p.table.num_rows]
        if any(t.schema != tables[0].schema for t in tables):
            tables = [t.select(READY_SCHEMA.names) for t in tables]
        return cls(pa.concat_tables(tables)) if tables else cls.empty()

    def with_ledger_keys(self, keys: np.ndarray, tails: pa.Array) -> ReadyEvents:
        """These events with their ledger keys and key texts (`ledger.event_keys`, `ledger.pair_tails`,
        computed for the lookup) attached, so that recording them once TikTok confirmed them need not compute
        them again, request by request."""
        table = self.table.append_column(LEDGER_KEY, pa.array(keys, pa.int64()))
        return ReadyEvents(table.append_column(LEDGER_TAIL, tails))

    def ledger_keys(self) -> tuple[np.ndarray, pa.Array] | tuple[None, None]:
        """The ledger keys and key texts attached by `with_ledger_keys`, if any."""
        if LEDGER_KEY not in self.table.schema.names:
            return None, None
        keys: np.ndarray = self.table.column(LEDGER_KEY).to_numpy()
        return keys, self.column(LEDGER_TAIL)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def __repr__(self) -> str:
        return f"ReadyEvents({len(self)} events)"

    def slice(self, start: int, stop: int | None = None) -> ReadyEvents:
        """Events `start` to `stop` (exclusive)."""
        stop = len(self) if stop is None else min(stop, len(self))
        return ReadyEvents(self.table.slice(start, max(0, stop - start)))

    def without(self, index: int) -> ReadyEvents:
        """Every event but the one at `index`."""
        return ReadyEvents.concat([self.slice(0, index), self.slice(index + 1)])

    def filter(self, keep: pa.Array) -> ReadyEvents:
        """The events where the boolean mask `keep` is true."""
        return ReadyEvents(self.table.filter(keep))

    def keys(self) -> list[tuple[str, str]]:
        """(event, event_id) of each event: the ledger's key."""
        events = self.table.column("event").to_pylist()
        ids = self.table.column("event_id").to_pylist()
        return list(zip(events, ids, strict=True))

    def column(self, name: str) -> pa.Array:
        """One column (`event`, `event_id`, `row_keys`, `json`) as one array."""
        return self.table.column(name).combine_chunks()

    def row_keys(self) -> pa.Array:
        """The row keys of every event, flattened."""
        return pc.list_flatten(self.table.column("row_keys")).combine_chunks()

    def row_events(self) -> tuple[pa.Array, pa.Array]:
        """The (event, event_id) of each row key of `row_keys()`, in the same order."""
        lists = self.table.column("row_keys").combine_chunks()
        if len(lists) == 0:
            empty = pa.array([], pa.string())
            return empty, empty
        owner = pc.list_parent_indices(lists)
        return (
            pc.take(self.table.column("event").combine_chunks(), owner),
            pc.take(self.table.column("event_id").combine_chunks(), owner),
        )

    def data_json(self) -> str:
        """The `data` array of `event/track/`: the events' JSON texts joined (in Arrow: one Python string)."""
        return self.data_bytes().decode()

    def data_bytes(self) -> bytes:
        """`data_json()` as UTF-8 bytes, written by Arrow in one pass (what a request sends: no text copies)."""
        return jsontext.join_all_bytes(self.table.column("json").combine_chunks(), ",", "[", "]")

    def event(self, index: int) -> GroupedEvent:
        """One event as an object."""
        row = self.table.slice(index, 1).to_pylist()[0]
        return GroupedEvent(row["event"], row["event_id"], row["row_keys"], row["json"])

    def events(self) -> list[GroupedEvent]:
        """Every event as an object (tests, plans of small queries)."""
        return [self.event(i) for i in range(len(self))]


@dataclass(frozen=True)
class RejectedEvents:
    """Events rejected before sending: their row keys (flattened) and each row's reason, as Arrow arrays."""

    row_keys: pa.Array
    reasons: pa.Array
    counts: dict[str, int]  # events per reason


def split_events(batch: pa.RecordBatch) -> tuple[ReadyEvents, RejectedEvents]:
    """One batch of grouped events (`grouping.EVENT_COLUMNS`) -> (events to send, rejected events)."""
    ready = pa.Table.from_batches([batch.select(["event", "event_id", "row_keys", "json"])])
    if ready.schema != READY_SCHEMA:
        ready = ready.cast(READY_SCHEMA)
    if batch.column("reason").null_count == batch.num_rows:  # nothing rejected: the usual case
        empty = pa.array([], pa.string())
        return ReadyEvents(ready), RejectedEvents(empty, empty, {})
    bad = pc.is_valid(batch.column("reason"))
    ready = ready.filter(pc.invert(bad))
    rejected = batch.filter(bad)
    lists = rejected.column("row_keys")
    reasons = rejected.column("reason")
    counts = {str(r["values"]): int(r["counts"]) for r in pc.value_counts(reasons).to_pylist()}
    per_row = pc.take(reasons, pc.list_parent_indices(lists)) if len(lists) else pa.array([], pa.string())
    return ReadyEvents(ready), RejectedEvents(pc.list_flatten(lists), per_row, counts)


def assemble(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[list[GroupedEvent], list[Rejected]]]:
    """Events (as objects) and rejections per event, batch by batch: for tests and small inputs."""
    for batch in batches:
        ready, _ = split_events(batch)
        bad = batch.filter(pc.is_valid(batch.column("reason")))
        rejected = list(
            zip(bad.column("row_keys").to_pylist(), bad.column("reason").to_pylist(), strict=True)
        )
        yield ready.events(), rejected
