"""Conversions behind offline-event validation (`validate.py`), vectorized over Arrow arrays: text, numbers,
ISO 8601 timestamps to Unix seconds, blank checks and derived event ids (docs/events.md)."""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.identity.coltypes import as_text

DERIVED_EVENT_ID_PREFIX: Final = "ttsync-event-id-v1"
# ISO 8601 date or date-time; group "zone" is set when the string carries Z or an offset.
_ISO_ZONED: Final = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"
_ISO_SHAPE: Final = (
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)


def as_string(array: pa.Array | pa.ChunkedArray, column: str) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type):
        return array
    if not pa.types.is_floating(array.type):
        return as_text(column, array, "text")  # refuses lists, structs, maps and blobs, naming the column
    # 123.0 -> "123": ids read from CSV or computed as doubles should not gain a ".0".
    whole = pc.equal(pc.floor(array), array)
    as_int = pc.cast(pc.if_else(whole, array, None), pa.int64(), safe=False)
    return pc.if_else(pc.fill_null(whole, False), pc.cast(as_int, pa.string()), pc.cast(array, pa.string()))


def null_if_blank(array: pa.Array) -> pa.Array:
    """`array` with NULL for each blank value (NULL, empty or only whitespace)."""
    if array.null_count == len(array):
        return array
    blanks = blank(array)
    if blanks.true_count == array.null_count:
        return array  # nothing blank but the nulls (the usual case): no copy
    return pc.if_else(blanks, pa.scalar(None, pa.string()), array)


def blank(array: pa.Array) -> pa.Array:
    """NULL, empty or only (Unicode) whitespace. Scans the strings without trimming them into a new array
    (the same answer as "trimmed length 0", at less than half the cost)."""
    return pc.fill_null(pc.or_(pc.equal(pc.binary_length(array), 0), pc.utf8_is_space(array)), True)


def not_in(array: pa.Array, allowed: pa.Array) -> pa.Array:
    # Null is "not given" (fine); a given value outside the list is bad.
    return pc.and_(pc.invert(blank(array)), pc.invert(pc.is_in(array, value_set=allowed)))


def as_float(array: pa.Array | pa.ChunkedArray, column: str) -> tuple[pa.Array, pa.Array]:
    """Cast to float64; returns (values with bad ones null, mask of given-but-not-a-number)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type):
        values = pc.cast(array, pa.float64())
        # NaN is not a number; an infinity is a number out of range (the caller's bounds reject it).
        bad = pc.fill_null(pc.is_nan(values), False)
        return pc.if_else(bad, None, values), bad
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.float64()), pa.array([False] * len(array))
    text = pc.utf8_trim_whitespace(as_string(array, column))
    numeric = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    given = pc.invert(blank(text))
    bad = pc.and_(given, pc.invert(pc.fill_null(numeric, False)))
    values = pc.cast(pc.if_else(pc.fill_null(numeric, False), text, None), pa.float64())
    return values, bad


def unix_seconds(array: pa.Array | pa.ChunkedArray, timezone: str) -> tuple[pa.Array, pa.Array]:
    """ISO 8601 values to Unix seconds; naive values are in `timezone`. Returns (seconds, given-but-bad mask)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    kind = array.type
    if pa.types.is_timestamp(kind):
        zoned = array if kind.tz else _assume_zone(array, timezone)
        return _seconds(zoned), pa.array([False] * n)
    if pa.types.is_date(kind):
        return _seconds(_assume_zone(pc.cast(array, pa.timestamp("s")), timezone)), pa.array([False] * n)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        given = pc.is_valid(array)
        return pa.nulls(n, pa.int64()), given
    text = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    shaped = pc.fill_null(pc.match_substring_regex(text, _ISO_SHAPE), False)
    zoned_mask = pc.and_(shaped, pc.fill_null(pc.match_substring_regex(text, _ISO_ZONED), False))
    # Date-only strings ("2026-11-20") are naive dates; "-05" alone after a date is not an offset.
    zoned_mask = pc.and_(zoned_mask, pc.greater(pc.utf8_length(text), 10))
    naive_mask = pc.and_(shaped, pc.invert(zoned_mask))
    try:
        text = pc.replace_substring(text, ",", ".")
        zoned = pc.cast(pc.if_else(zoned_mask, text, None), pa.timestamp("ns", tz="UTC"))
        naive = _assume_zone(pc.cast(pc.if_else(naive_mask, text, None), pa.timestamp("ns")), timezone)
        seconds = pc.if_else(zoned_mask, _seconds(zoned), _seconds(naive))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A value has the ISO shape but is not a real date-time (month 13, year 9999 in ns): go row by row.
        seconds = pa.array([_one_unix_second(v, timezone) for v in text.to_pylist()], pa.int64())
    bad = pc.and_(pc.is_valid(text), pc.is_null(seconds))
    return seconds, bad


def _assume_zone(array: pa.Array, timezone: str) -> pa.Array:
    # Ambiguous or skipped local times (DST changes) take the earliest reading instead of failing the batch.
    return pc.assume_timezone(array, timezone, ambiguous="earliest", nonexistent="earliest")


def _seconds(array: pa.Array) -> pa.Array:
    # Sub-second parts are dropped (TikTok takes integer seconds, ref §3.1).
    return pc.cast(pc.cast(array, pa.timestamp("s", tz="UTC"), safe=False), pa.int64())


def _one_unix_second(value: Any, timezone: str) -> int | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return int(parsed.astimezone(UTC).timestamp())


def derive_event_ids(
    given: pa.Array,
    event: pa.Array,
    event_time: pa.Array,
    order_id: pa.Array,
    shop_id: pa.Array,
    keys: pa.Array,
) -> pa.Array:
    """Fill missing event ids deterministically (documented in docs/events.md, "Derived event ids").

    id = first 32 hex of SHA-256 over "ttsync-event-id-v1|event|event_time|order:<order_id>|shop_id", or
    "row:<row_key>" in place of the order when there is no order id (each row is then its own event).
    """
    missing = blank(given)
    if not pc.any(missing).as_py():
        return given
    anchor = pc.if_else(
        blank(order_id),
        pc.binary_join_element_wise("row:", keys, ""),
        pc.binary_join_element_wise("order:", order_id, ""),
    )
    text = pc.binary_join_element_wise(
        DERIVED_EVENT_ID_PREFIX,
        pc.fill_null(event, ""),
        pc.fill_null(pc.cast(event_time, pa.string()), ""),
        pc.fill_null(anchor, ""),
        pc.fill_null(shop_id, ""),
        "|",
    )
    derived = pa.array(
        [None if t is None else hashlib.sha256(t.encode()).hexdigest()[:32] for t in text.to_pylist()],
        pa.string(),
    )
    # Without a timestamp or event the identity of the event is unknown: leave the id missing.
    derived = pc.if_else(pc.or_(pc.is_null(event_time), blank(event)), None, derived)
    return pc.if_else(missing, derived, given)


def event_id_pattern() -> re.Pattern[str]:
    """Shape of a derived event id (32 lowercase hex characters)."""
    return re.compile(r"^[0-9a-f]{32}$")
