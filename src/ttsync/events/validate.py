"""Vectorized validation of offline-event rows: one Arrow batch in, one prepared batch out.

Each output row keeps its row key, the first rejection reason that applies (or null), and the converted
values (event time as Unix seconds, numbers as numbers, upper-cased currency). Emails and phones go through
`ttsync.identity.Preparer` (the same normalization and hashing rules as audiences); only hashes come out.
Grouping rows into events and building the payload happen later (`ttsync.events.stage`).
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from ttsync.events.columns import ColumnPlan
from ttsync.events.parameters import (
    CONTENT_TYPES,
    EVENT_CHANNELS,
    PARAMETERS,
    ParamType,
    allowed_event_names,
)
from ttsync.events.reasons import RejectReason
from ttsync.identity import ColumnSpec, MatchReport, Preparer
from ttsync.identity.arrowutil import arange
from ttsync.identity.coltypes import Role, as_text, check_schema
from ttsync.identity.prepare import identifier_texts
from ttsync.identity.report import AutoDecision
from ttsync.identity.rowkeys import KeyHasher, looks_like_identifier

# ref §3.3: offline events must have happened within the last 28 days.
MAX_EVENT_AGE: Final = timedelta(days=28)
# Warehouse and TikTok clocks disagree a little; an event up to this far ahead is treated as "now".
FUTURE_SKEW: Final = timedelta(minutes=10)
# Several emails or phones may share one cell, separated by commas (neither contains a comma).
IDENTIFIER_DELIMITER: Final = ","
DERIVED_EVENT_ID_PREFIX: Final = "ttsync-event-id-v1"
# TikTok documents no limit; ids longer than this are data errors (a whole description pasted as an id) and
# would bloat the ledger that keeps every accepted id.
MAX_EVENT_ID_LENGTH: Final = 256
# Bounds that keep every number exact and finite on the wire: amounts up to a quadrillion (any summed event
# value stays finite), quantities up to the largest integer a JSON reader holds exactly.
MAX_AMOUNT: Final = 1e15
MAX_QUANTITY: Final = 2**53 - 1

_CURRENCIES: Final = pa.array(sorted(c.alpha_3 for c in pycountry.currencies))
# ISO 8601 date or date-time; group "zone" is set when the string carries Z or an offset.
_ISO_ZONED: Final = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"
_ISO_SHAPE: Final = (
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)

STRING_PARAMS: Final = tuple(
    p.name
    for p in PARAMETERS
    if p.type in (ParamType.STRING, ParamType.ENUM, ParamType.EVENT_NAME, ParamType.CURRENCY)
    and p.name not in ("event_set_id", "event_source")
)

# Schema of a prepared batch (the staging format; see stage.py).
PREPARED_SCHEMA: Final = pa.schema(
    [
        ("seq", pa.int64()),
        ("row_key", pa.string()),
        ("reason", pa.string()),
        ("has_contact", pa.bool_()),
        ("event_time", pa.int64()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("value", pa.float64()),
        *[(name, pa.string()) for name in STRING_PARAMS],
    ]
)


@dataclass(frozen=True)
class EventRules:
    """Per-delivery settings the checks depend on."""

    event_set_id: str
    event_source: str = "offline"
    timezone: str = "UTC"
    derive_event_id: bool = False
    default_region: str | None = None


@dataclass(frozen=True)
class PreparedRows:
    """One validated batch: `rows` follows `PREPARED_SCHEMA`; `ids` is identity's (row_key, id_schema, hash).

    The `row_key` of `ids` is the row's `seq` (as text), not its warehouse row key.
    """

    rows: pa.RecordBatch
    ids: pa.RecordBatch


class RowValidator:
    """Validates batches of one query result; keeps a running sequence number across batches."""

    def __init__(
        self,
        plan: ColumnPlan,
        rules: EventRules,
        *,
        key_column: str | None,
        now: datetime,
        key_hasher: KeyHasher | None = None,
        first_seq: int = 0,
        decided: Sequence[AutoDecision] = (),
    ) -> None:
        """`first_seq`: the sequence number of the first row (a Spark partition's place in the query order);
        `decided`: the `auto` email and phone columns decided beforehand (by Spark's driver, for every
        partition alike), else each is decided from its first values."""
        self.plan = plan
        self.rules = rules
        self.key_column = key_column
        # Identifier-looking row keys and event ids are keyed-hashed (ttsync.identity.rowkeys). Event ids must
        # hash the same in every run (ledger, TikTok's de-duplication): without the workspace's key they are
        # rejected instead. Row keys only need to be consistent within the run.
        self._event_ids = key_hasher
        self._row_keys = key_hasher or KeyHasher.ephemeral()
        self._seq = first_seq
        self._zone = zoneinfo.ZoneInfo(rules.timezone)
        now_s = int(now.timestamp())
        self._oldest = now_s - int(MAX_EVENT_AGE.total_seconds())
        self._newest = now_s + int(FUTURE_SKEW.total_seconds())
        self._allowed_events = allowed_event_names(rules.event_source)
        specs = [
            ColumnSpec(c, "email", hash_state="auto", delimiter=IDENTIFIER_DELIMITER) for c in plan.emails
        ] + [
            ColumnSpec(
                c, "phone", hash_state="auto", delimiter=IDENTIFIER_DELIMITER, region=rules.default_region
            )
            for c in plan.phones
        ]
        self._preparer = Preparer(specs, key_column="row_key", decided=decided)

    def report(self) -> MatchReport:
        """Identity's match report over every batch so far (per identifier type: valid, rejected by reason)."""
        return self._preparer.report()

    def process(self, batch: pa.RecordBatch) -> PreparedRows:
        """Validate one batch. Never raises for bad values: each bad row gets a reason."""
        n = batch.num_rows
        seq = pa.array(range(self._seq, self._seq + n), pa.int64())
        self._seq += n
        if self.key_column is None:
            # No key column: a row's key is its position in the query result ("#0", "#1", ...).
            keys = pc.binary_join_element_wise("#", pc.cast(seq, pa.string()), "")
        else:
            keys = (
                _as_string(batch.column(self.key_column), self.key_column) if n else pa.array([], pa.string())
            )
            keys = self._row_keys.protect(keys, batch.column(self.key_column) if n else None)
        reasons: dict[RejectReason, pa.Array] = {}

        def flag(reason: RejectReason, mask: pa.Array) -> None:
            mask = pc.fill_null(mask, False)
            reasons[reason] = pc.or_(reasons[reason], mask) if reason in reasons else mask

        flag(RejectReason.MISSING_ROW_KEY, _blank(keys))
        strings: dict[str, pa.Array] = {}
        for name in STRING_PARAMS:
            column = self.plan.column(name)
            # A blank value is "not given": never sent as "" (TikTok would read an empty currency or id).
            strings[name] = (
                _null_if_blank(_as_string(batch.column(column), column))
                if column
                else pa.nulls(n, pa.string())
            )

        # event
        event = pc.utf8_trim_whitespace(strings["event"])
        strings["event"] = event
        flag(RejectReason.MISSING_EVENT, _blank(event))
        if self._allowed_events is not None:
            known = pc.is_in(event, value_set=pa.array(sorted(self._allowed_events)))
            flag(RejectReason.UNKNOWN_EVENT, pc.and_(pc.invert(_blank(event)), pc.invert(known)))

        # timestamp -> Unix seconds
        ts_column = self.plan.column("timestamp")
        assert ts_column is not None  # plan_columns requires it
        event_time, bad_time = _unix_seconds(batch.column(ts_column), self.rules.timezone)
        flag(RejectReason.MISSING_TIMESTAMP, pc.is_null(batch.column(ts_column)))
        flag(RejectReason.INVALID_TIMESTAMP, bad_time)
        flag(RejectReason.TOO_OLD, pc.less(event_time, self._oldest))
        flag(RejectReason.IN_FUTURE, pc.greater(event_time, self._newest))

        # identifiers: present at all? (identity decides which are valid)
        has_contact = pa.array([False] * n, pa.bool_())
        for column in (*self.plan.emails, *self.plan.phones):
            values, rows = identifier_texts(batch.column(column), column, IDENTIFIER_DELIMITER)
            given = pc.unique(pc.filter(rows, pc.invert(_blank(values))))
            has_contact = pc.or_(has_contact, pc.is_in(arange(n), value_set=given))

        # currency, enums
        currency = pc.utf8_upper(pc.utf8_trim_whitespace(strings["currency"]))
        strings["currency"] = currency
        flag(RejectReason.INVALID_CURRENCY, _not_in(currency, _CURRENCIES))
        channel = pc.utf8_lower(pc.utf8_trim_whitespace(strings["event_channel"]))
        strings["event_channel"] = channel
        flag(RejectReason.INVALID_EVENT_CHANNEL, _not_in(channel, pa.array(EVENT_CHANNELS)))
        content_type = pc.utf8_lower(pc.utf8_trim_whitespace(strings["content_type"]))
        strings["content_type"] = content_type
        flag(RejectReason.INVALID_CONTENT_TYPE, _not_in(content_type, pa.array(CONTENT_TYPES)))

        # numbers
        numbers: dict[str, pa.Array] = {}
        for name in ("price", "value", "quantity"):
            column = self.plan.column(name)
            raw = batch.column(column) if column else pa.nulls(n, pa.float64())
            as_float, bad = _as_float(raw, column or name)
            bound = MAX_QUANTITY if name == "quantity" else MAX_AMOUNT
            # Infinity (1e400 as text, or a DOUBLE column's inf) and huge values are out of range, not sent.
            out_of_range = pc.fill_null(pc.greater(pc.abs(as_float), bound), False)
            if name == "quantity":
                whole = pc.equal(pc.floor(as_float), as_float)
                bad = pc.or_(bad, pc.and_(pc.is_valid(as_float), pc.invert(pc.fill_null(whole, False))))
                bad = pc.and_(bad, pc.invert(out_of_range))
                numbers[name] = pc.cast(pc.if_else(pc.or_(bad, out_of_range), None, as_float), pa.int64())
            else:
                numbers[name] = pc.if_else(out_of_range, None, as_float)
            flag(RejectReason.INVALID_NUMBER, bad)
            flag(RejectReason.NUMBER_OUT_OF_RANGE, out_of_range)

        # event set / source in the row must match the destination
        for name, expected, reason in (
            ("event_set_id", self.rules.event_set_id, RejectReason.EVENT_SET_MISMATCH),
            ("event_source", self.rules.event_source, RejectReason.EVENT_SOURCE_MISMATCH),
        ):
            column = self.plan.column(name)
            if column:
                given = pc.utf8_trim_whitespace(_as_string(batch.column(column), column))
                flag(reason, pc.and_(pc.invert(_blank(given)), pc.not_equal(given, expected)))

        # web-only fields (ref §3.1: ttclid and ttp are web only; ip and user_agent web and app)
        if self.rules.event_source != "web":
            for param in PARAMETERS:
                if param.web_only:
                    flag(RejectReason.WEB_ONLY_FIELD, pc.invert(_blank(strings[param.name])))

        # event_id: given (keyed-hashed when it looks personal), derived, or missing
        event_id = pc.utf8_trim_whitespace(strings["event_id"])
        if self._event_ids is not None:
            event_id = self._event_ids.protect(event_id)
        else:
            flag(RejectReason.PERSONAL_EVENT_ID, looks_like_identifier(event_id))
            event_id = pc.if_else(looks_like_identifier(event_id), pa.scalar(None, pa.string()), event_id)
        if self.rules.derive_event_id:
            event_id = _derive_event_ids(
                event_id, event, event_time, strings["order_id"], strings["shop_id"], keys
            )
        strings["event_id"] = event_id
        flag(RejectReason.MISSING_EVENT_ID, _blank(event_id))
        flag(RejectReason.EVENT_ID_TOO_LONG, pc.greater(pc.utf8_length(event_id), MAX_EVENT_ID_LENGTH))

        reason = pa.nulls(n, pa.string())
        for code in reversed(list(RejectReason)):  # earliest in the enum wins
            if code in reasons:
                reason = pc.if_else(reasons[code], pa.scalar(code.value), reason)

        rows = pa.RecordBatch.from_arrays(
            [
                seq,
                keys,
                reason,
                has_contact,
                event_time,
                numbers["price"],
                numbers["quantity"],
                numbers["value"],
                *[strings[name] for name in STRING_PARAMS],
            ],
            schema=PREPARED_SCHEMA,
        )
        # Identity keys its hashes by the row's sequence number (null where the row key is missing, so
        # identity rejects those rows as before): the stage puts hashes back on rows by position, which is
        # much cheaper than matching row-key strings.
        position_keys = pc.if_else(pc.is_null(keys), pa.scalar(None, pa.int64()), seq)
        identity_input = pa.RecordBatch.from_arrays(
            [position_keys, *[batch.column(c) for c in (*self.plan.emails, *self.plan.phones)]],
            names=["row_key", *self.plan.emails, *self.plan.phones],
        )
        ids = self._preparer.process(identity_input).ids
        return PreparedRows(rows=rows, ids=ids)


def check_event_schema(plan: ColumnPlan, schema: pa.Schema, key_column: str | None) -> None:
    """Refuse, before anything is sent, query columns whose type cannot be read (`ColumnTypeError` naming each
    column and type): emails and phones follow the identifier rules, other fields must be single values.
    Timestamps of other types are rejected row by row (`invalid_timestamp`)."""
    roles: dict[str, Role] = dict.fromkeys(plan.by_param.values(), "text")
    roles.pop(plan.column("timestamp") or "", None)
    if key_column is not None:
        roles[key_column] = "text"
    roles |= dict.fromkeys((*plan.emails, *plan.phones), "identifier")
    check_schema(schema, roles)


def _as_string(array: pa.Array | pa.ChunkedArray, column: str) -> pa.Array:
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


def _null_if_blank(array: pa.Array) -> pa.Array:
    return pc.if_else(_blank(array), pa.scalar(None, pa.string()), array)


def _blank(array: pa.Array) -> pa.Array:
    return pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(array)), 0), True)


def _not_in(array: pa.Array, allowed: pa.Array) -> pa.Array:
    # Null is "not given" (fine); a given value outside the list is bad.
    return pc.and_(pc.invert(_blank(array)), pc.invert(pc.is_in(array, value_set=allowed)))


def _as_float(array: pa.Array | pa.ChunkedArray, column: str) -> tuple[pa.Array, pa.Array]:
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
    text = pc.utf8_trim_whitespace(_as_string(array, column))
    numeric = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    given = pc.invert(_blank(text))
    bad = pc.and_(given, pc.invert(pc.fill_null(numeric, False)))
    values = pc.cast(pc.if_else(pc.fill_null(numeric, False), text, None), pa.float64())
    return values, bad


def _unix_seconds(array: pa.Array | pa.ChunkedArray, timezone: str) -> tuple[pa.Array, pa.Array]:
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


def _derive_event_ids(
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
    missing = _blank(given)
    if not pc.any(missing).as_py():
        return given
    anchor = pc.if_else(
        _blank(order_id),
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
    derived = pc.if_else(pc.or_(pc.is_null(event_time), _blank(event)), None, derived)
    return pc.if_else(missing, derived, given)


def event_id_pattern() -> re.Pattern[str]:
    """Shape of a derived event id (32 lowercase hex characters)."""
    return re.compile(r"^[0-9a-f]{32}$")
