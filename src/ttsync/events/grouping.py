"""Grouping: validated rows in, one row per event out, with the event's `event/track/` JSON text.

Works chunk by chunk as the query's rows arrive (`EventGrouper`), so the first events go out while later rows
are still being read. Every column is built with Arrow compute, so no Python object is made per row or per
event. Grouping rules (docs/events.md, "Item rows and event-level values"):

- rows with the same (event, event_id) in one chunk are one event; the rows of the chunk's last event are
  carried over to the next chunk, so an event whose rows are adjacent in the query result is always whole;
  a row without event or event_id is an event (a rejection) of its own;
- each row with item fields is one `contents` entry, in query order; event-level fields take the first
  non-empty value in query order;
- emails and phones are the distinct hashes of all the event's rows, sorted, sent as lists (ref §3.1: "a
  string or an array of strings"); ip, user agent, ttclid and ttp are sent as given (never hashed, ref §6.1);
- `value` is the sum of the rows' `value`; without any, the sum of price x quantity (quantity 1 if missing);
- if any row of the event is invalid, the whole event is rejected with the first failing row's reason (in
  query order); an event left without any valid email or phone is rejected too; a row key used twice in a
  chunk rejects both rows' events (`duplicate_row_key`: their outcomes could not be told apart), and a key
  used again in a later chunk rejects the later row's event (the earlier one may be sent already; the keys of
  earlier chunks are kept in bounded memory by `seen_keys.SeenKeys`).

Events made of one row (most of them) skip the aggregation: their columns are the row's.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.events import jsontext as js
from ttsync.events.parameters import BY_NAME
from ttsync.events.reasons import RejectReason
from ttsync.events.seen_keys import SeenKeys
from ttsync.events.validate import PreparedRows
from ttsync.identity.spec import id_schema_for

# Identity's id_schema of the hashes the payload sends, by the column that holds them on each row.
ID_SCHEMAS: Final = {"emails": id_schema_for("email", "sha256"), "phones": id_schema_for("phone", "sha256")}
# Event-level columns -> (object, key) in the payload, from the parameter table, in payload order.
# `event_channel` is validated but not sent: TikTok documents `properties.event_channel` only in the legacy
# offline payload (`offline/track/`), and Events 2.0 may ignore or reject it (ref §3.1, §9).
EVENT_LEVEL: Final = tuple(
    (name, *BY_NAME[name].destination.split(".", 1))
    for name in (
        "currency",
        "content_type",
        "order_id",
        "shop_id",
        "ip",
        "agent",
        "tiktok_click_id",
        "cookie_id",
    )
)
ITEMS: Final = tuple(
    (name, BY_NAME[name].tiktok_name)
    for name in ("content_id", "content_name", "content_category", "brand", "price", "quantity")
)
# Text columns whose values validation limits to fixed lists of plain words: quoting needs no escaping.
PLAIN_TEXT: Final = frozenset({"currency", "event_channel", "content_type"})
NUMBERS: Final = frozenset({"price", "quantity"})
# Columns of a grouped batch (see `group_events`).
EVENT_COLUMNS: Final = ("event", "event_id", "row_keys", "reason", "json")
# An event with more rows than this is grouped in parts rather than carried over without bound.
MAX_CARRY_ROWS: Final = 100_000

_LEVEL: Final = tuple(name for name, _, _ in EVENT_LEVEL)
_STRING: Final = pa.string()


class EventGrouper:
    """Groups chunks of validated rows into events, carrying the last event's rows to the next chunk."""

    def __init__(self, max_carry_rows: int = MAX_CARRY_ROWS, seen: SeenKeys | None = None) -> None:
        """`seen`: where the row keys of earlier chunks are kept, to reject a key used again in a later chunk
        (without it, only keys repeated within a chunk are; Spark's executors check every key beforehand)."""
        self._carry: pa.Table | None = None
        self._max_carry = max_carry_rows
        self._seen = seen

    def add(self, prepared: PreparedRows) -> pa.RecordBatch | None:
        """Group one validated batch; returns the events complete so far (None if there are none yet)."""
        return self.add_rows(attach_hashes(prepared))

    def add_rows(self, table: pa.Table) -> pa.RecordBatch | None:
        """`add` for rows with their hashes attached already (`attach_hashes`; Spark's executors keep them)."""
        if self._carry is not None:
            table = pa.concat_tables([self._carry, table])
            self._carry = None
        if table.num_rows == 0:
            return None
        # Before the carry-over is split off, so a key used by a carried row and another row is caught too.
        row_key = table.column("row_key").combine_chunks()
        reason = _flag_duplicate_row_keys(row_key, table.column("reason").combine_chunks())
        hashes = None
        if self._seen is not None:
            hashes = self._seen.hashes(row_key)
            again = pc.and_(pa.array(self._seen.seen(hashes)), pc.is_null(reason))
            reason = pc.if_else(again, pa.scalar(RejectReason.DUPLICATE_ROW_KEY.value), reason)
        table = table.set_column(table.schema.get_field_index("reason"), "reason", reason)
        last = table.slice(table.num_rows - 1)
        event, event_id = last.column("event")[0], last.column("event_id")[0]
        done: np.ndarray | None = None
        if event.is_valid and event_id.is_valid and event.as_py() and event_id.as_py():
            # The last event's rows may go on in the next chunk: keep them (wherever they are in this one).
            tail = pc.fill_null(
                pc.and_(pc.equal(table.column("event"), event), pc.equal(table.column("event_id"), event_id)),
                False,
            ).to_numpy(zero_copy_only=False)
            count = int(tail.sum())
            if count <= self._max_carry:
                done = ~tail
                if tail[table.num_rows - count :].all():
                    # The usual case: the last event's rows end the chunk. Slices instead of two filtered
                    # copies of every column; the few carried rows are copied, so the chunk's buffers are
                    # not kept alive by them.
                    self._carry = table.take(np.arange(table.num_rows - count, table.num_rows))
                    table = table.slice(0, table.num_rows - count)
                else:
                    self._carry = table.filter(pa.array(tail))
                    table = table.filter(pa.array(done))
        if hashes is not None and self._seen is not None:
            # Carried rows are checked again with the next chunk: only the rows grouped now are recorded.
            self._seen.add(hashes if done is None else hashes[done])
        return group_events(table) if table.num_rows else None

    def finish(self) -> pa.RecordBatch | None:
        """The events of the rows still carried over (call once the query is exhausted)."""
        carry, self._carry = self._carry, None
        return group_events(carry) if carry is not None and carry.num_rows else None


def attach_hashes(prepared: PreparedRows) -> pa.Table:
    """The validated rows with their email and phone hashes (comma-joined per row; null without any)."""
    rows = prepared.rows
    seq = rows.column("seq")
    table = pa.Table.from_batches([rows])
    for name, schema in ID_SCHEMAS.items():
        table = table.append_column(pa.field(name, _STRING), [_hashes_per_row(prepared.ids, seq, schema)])
    return table


def group_events(rows: pa.Table) -> pa.RecordBatch:
    """One row per event of `rows` (columns `EVENT_COLUMNS`), in the order of each event's first row.

    Duplicate row keys must be flagged already (`EventGrouper.add` does).
    `row_keys` lists the event's row keys in query order; `reason` is the rejection reason (null for an event
    to send); `json` is the event's `data[]` item (null for a rejected event).

    The rows are put in event order (a no-op when each event's rows are adjacent, the usual case), so every
    event is a run of rows: event-level values are read at the run's first valid row, lists are the runs
    themselves, and only `value` needs an aggregation (when some event has several rows).
    """
    n = rows.num_rows
    cols = {name: rows.column(name).combine_chunks() for name in rows.column_names}
    cols["item"] = _item_json(cols, n)
    cols["line_total"] = _line_total(cols)
    group, first_row = _groups(cols["event"], cols["event_id"])
    # Number the events by first row (query order), then order the rows by event (stable: query order within).
    rank = np.empty(len(first_row), dtype=np.int64)
    rank[np.argsort(first_row, kind="stable")] = np.arange(len(first_row))
    event_of_row = rank[group]
    if n > 1 and not (np.diff(event_of_row) >= 0).all():
        order = pa.array(np.argsort(event_of_row, kind="stable"))
        cols = {name: pc.take(col, order) for name, col in cols.items()}
    counts = np.bincount(event_of_row, minlength=len(first_row))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    has_contact = pc.fill_null(cols["has_contact"], False)
    if len(counts) < n:
        has_contact = pa.array(
            np.logical_or.reduceat(has_contact.to_numpy(zero_copy_only=False), offsets[:-1])
        )
    events = {
        "event": _first_valid(cols["event"], offsets),
        "event_id": _first_valid(cols["event_id"], offsets),
        "reason": _first_valid(cols["reason"], offsets),
        "has_contact": has_contact,
        "row_keys": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), cols["row_key"]),
        "event_time": _first_valid(cols["event_time"], offsets),
        "emails": _joined(cols["emails"], offsets, ","),
        "phones": _joined(cols["phones"], offsets, ","),
        **{name: _first_valid(cols[name], offsets) for name in _LEVEL},
        "value": _event_values(cols, offsets),
        "contents": _joined(cols["item"], offsets, "},{"),
    }
    return _finish(events, len(counts))


def _groups(event: pa.Array, event_id: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(group number of each row, first row of each group). Rows without event or event_id are groups of
    their own."""
    n = len(event)
    solo = pc.fill_null(pc.or_(pc.equal(event, ""), pc.equal(event_id, "")), True)
    key = pc.if_else(solo, pa.scalar(None, _STRING), pc.binary_join_element_wise(event, event_id, "\x00"))
    encoded = pc.dictionary_encode(key)
    group = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    alone = group < 0
    groups = len(encoded.dictionary)
    group[alone] = groups + np.arange(int(alone.sum()))
    total = groups + int(alone.sum())
    first_row = np.full(total, n, dtype=np.int64)
    np.minimum.at(first_row, group, np.arange(n, dtype=np.int64))
    return group, first_row


def _flag_duplicate_row_keys(row_key: pa.Array, reason: pa.Array) -> pa.Array:
    encoded = pc.dictionary_encode(row_key)
    if len(encoded.dictionary) + row_key.null_count == len(row_key):
        return reason  # every key once (the usual case)
    index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    counts = np.bincount(index[index >= 0], minlength=len(encoded.dictionary))
    dup = (index >= 0) & (counts[np.maximum(index, 0)] > 1)
    flagged = pc.and_(pa.array(dup), pc.is_null(reason))
    return pc.if_else(flagged, pa.scalar(RejectReason.DUPLICATE_ROW_KEY.value), reason)


def _item_json(cols: dict[str, pa.Array], n: int) -> pa.Array:
    """Each row's `contents` entry without braces (`"content_id":"sku-1","price":2`); null without items."""
    fields = [
        js.raw(key, js.number(cols[name])) if name in NUMBERS else js.text(key, cols[name])
        for name, key in ITEMS
        if cols[name].null_count < n
    ]
    if not fields:
        return pa.nulls(n, _STRING)
    valid = pc.is_valid(fields[0][1])
    for _, values, _, _ in fields[1:]:
        valid = pc.or_(valid, pc.is_valid(values))
    return js.with_validity(js.members(fields, n), valid)


def _first_valid(values: pa.Array, offsets: np.ndarray) -> pa.Array:
    """The first non-null value of each run `offsets[i]:offsets[i + 1]` of `values` (null for a run without
    any)."""
    starts = offsets[:-1]
    if len(starts) == len(values):
        return values  # one row per event: its own value
    if values.null_count == 0:
        return pc.take(values, pa.array(starts))
    valid = np.flatnonzero(pc.is_valid(values).to_numpy(zero_copy_only=False))
    at = np.searchsorted(valid, starts)
    position = valid[np.minimum(at, max(len(valid) - 1, 0))] if len(valid) else starts
    found = (at < len(valid)) & (position < offsets[1:])
    return pc.take(values, pa.array(np.where(found, position, 0), mask=~found))


def _joined(values: pa.Array, offsets: np.ndarray, separator: str) -> pa.Array:
    """The non-null values of each run of `values` joined in order; null for a run without any."""
    if len(offsets) - 1 == len(values):
        return values  # one row per event: its own value
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    per_run = np.add.reduceat(valid.astype(np.int64), offsets[:-1]) if len(values) else np.zeros(0, np.int64)
    if (per_run <= 1).all():
        return _first_valid(values, offsets)
    given = values if values.null_count == 0 else pc.filter(values, pa.array(valid))
    list_offsets = np.zeros(len(per_run) + 1, dtype=np.int32)
    np.cumsum(per_run, out=list_offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(list_offsets), given, mask=pa.array(per_run == 0))
    return pc.binary_join(lists, separator)


def _event_values(cols: dict[str, pa.Array], offsets: np.ndarray) -> pa.Array:
    """Each event's `value`: the sum of its rows' `value`, else the sum of their price x quantity (null
    without either). Arrow's grouped sum adds in row order, as for one row per event."""
    if len(offsets) - 1 == len(cols["value"]):
        return pc.coalesce(cols["value"], cols["line_total"])
    some = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)
    event = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    sums = (
        pa.table({"event": event, "value": cols["value"], "line_total": cols["line_total"]})
        .group_by("event", use_threads=False)
        .aggregate([("value", "sum", some), ("line_total", "sum", some)])
    )
    value = pc.coalesce(
        sums.column("value_sum").combine_chunks(), sums.column("line_total_sum").combine_chunks()
    )
    # Back to event numbers (groups come out in the order of their first row already: a no-op then).
    return pc.take(value, pa.array(np.argsort(sums.column("event").to_numpy(), kind="stable")))


def _line_total(cols: dict[str, pa.Array] | dict[str, pa.ChunkedArray]) -> pa.Array:
    return pc.multiply(cols["price"], pc.coalesce(pc.cast(cols["quantity"], pa.float64()), 1.0))


def _finish(col: dict[str, pa.Array], n: int) -> pa.RecordBatch:
    """Judge each of the `n` events (columns `col`) and write its JSON text."""
    no_contact = pc.and_(pc.is_null(col["emails"]), pc.is_null(col["phones"]))
    contact_reason = pc.if_else(
        col["has_contact"],
        pa.scalar(RejectReason.INVALID_EMAIL_OR_PHONE.value),
        pa.scalar(RejectReason.MISSING_EMAIL_OR_PHONE.value),
    )
    # A summed value beyond the largest double (validation bounds single values).
    infinite = pc.fill_null(pc.invert(pc.is_finite(col["value"])), False)
    verdict = pc.coalesce(
        col["reason"],
        pc.if_else(infinite, pa.scalar(RejectReason.NUMBER_OUT_OF_RANGE.value), pa.scalar(None, _STRING)),
        pc.if_else(no_contact, contact_reason, pa.scalar(None, _STRING)),
    )
    user = [
        js.raw("email", _hash_list(col["emails"]), '["', '"]'),
        js.raw("phone", _hash_list(col["phones"]), '["', '"]'),
        *(_field(key, col[name]) for name, where, key in EVENT_LEVEL if where == "user"),
    ]
    properties = [
        *(_field(key, col[name]) for name, where, key in EVENT_LEVEL if where == "properties"),
        js.raw("value", js.number(col["value"])),
        js.raw("contents", col["contents"], "[{", "}]"),
    ]
    top = [
        js.text("event", col["event"]),
        js.text("event_id", col["event_id"]),
        js.raw("event_time", js.number(col["event_time"])),
    ]
    inline = js.inline("user", user, n), js.inline("properties", properties, n)
    if inline[0] is not None and inline[1] is not None:
        # Every user field and property given on every event (the usual case): the whole text in one pass.
        text = js.members([*top, *inline[0], *inline[1]], n, before="{", after="}")
    else:
        # `"properties":{...}` is left out when an event has no property at all.
        props = js.members(properties, n, before=',"properties":{', after="}")
        text = js.members([*top, js.raw("user", js.members(user, n), "{", "}")], n, before="{")
        text = pc.binary_join_element_wise(text, props, "}", "")
    return pa.RecordBatch.from_arrays(
        [
            col["event"],
            col["event_id"],
            col["row_keys"],
            verdict,
            js.with_validity(text, pc.is_null(verdict)),
        ],
        names=list(EVENT_COLUMNS),
    )


def _field(key: str, values: pa.Array) -> js.Field:
    # Values validated to fixed lists of plain words need no escaping.
    return js.plain_text(key, values) if key in PLAIN_TEXT else js.text(key, values)


def _hash_list(text: pa.Array) -> pa.Array:
    """The distinct hashes in comma-joined text, sorted, as the inside of a JSON array (`h1","h2`); NULL
    without any. Hashes are lowercase hex (no escaping); one hash (the usual case) is used as it is."""
    if text.null_count == len(text):
        return text
    many = pc.fill_null(pc.greater(pc.binary_length(text), 64), False)  # a SHA-256 hash is 64 characters
    if not pc.any(many).as_py():
        return text
    parts = pc.split_pattern(pc.filter(text, many), ",")
    pairs = pa.table({"owner": pc.list_parent_indices(parts), "hash": pc.list_flatten(parts)})
    pairs = pairs.sort_by([("owner", "ascending"), ("hash", "ascending")])
    owner, hashes = pairs.column("owner").to_numpy(), pairs.column("hash").combine_chunks()
    fresh = np.ones(len(owner), dtype=bool)
    fresh[1:] = (owner[1:] != owner[:-1]) | pc.not_equal(hashes[1:], hashes[:-1]).to_numpy(
        zero_copy_only=False
    )
    kept = pa.table({"owner": owner[fresh], "hash": pc.filter(hashes, pa.array(fresh))})
    lists = kept.group_by("owner", use_threads=False).aggregate([("hash", "list")])
    # The lists come in the order of the rows they replace (`owner` ascending).
    return pc.replace_with_mask(text, many, pc.binary_join(lists.column("hash_list").combine_chunks(), '","'))


def _hashes_per_row(ids: pa.RecordBatch, seq: pa.Array, id_schema: str) -> pa.Array:
    """For each row, its hashes of one identifier type joined with commas; null without any.

    Identity returns (row_key, id_schema, hash) rows keyed by the row's `seq` (see `PreparedRows`), with any
    number of hashes per row (a cell may hold several emails); grouping wants them on the row.
    """
    n = len(seq)
    of_type = ids.filter(pc.equal(ids.column("id_schema"), id_schema))
    if of_type.num_rows == 0:
        return pa.nulls(n, _STRING)
    first = seq[0].as_py() if n else 0
    positions = pc.subtract(pc.cast(of_type.column("row_key"), pa.int64()), first)
    hashes = of_type.column("hash").cast(_STRING)
    if len(positions) > 1 and np.bincount(positions.to_numpy(zero_copy_only=False)).max() > 1:
        # Some row has several hashes of this type (the rare case): join them per row.
        grouped = (
            pa.table({"position": positions, "hash": hashes})
            .group_by("position", use_threads=False)
            .aggregate([("hash", "list")])
        )
        positions = grouped.column("position").combine_chunks()
        hashes = pc.binary_join(grouped.column("hash_list"), ",").combine_chunks()
    # seq runs without gaps in a batch: a row's position is its index.
    rows = positions.to_numpy(zero_copy_only=False)
    if len(rows) == n and (rows == np.arange(n)).all():
        return hashes  # one hash on every row, in row order (a column without a bad value)
    where = np.full(n, -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    missing = where < 0
    return pc.take(hashes, pa.array(np.where(missing, 0, where), mask=missing))
