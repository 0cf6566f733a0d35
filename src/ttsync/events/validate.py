"""Vectorized validation of offline-event rows: one Arrow batch in, one prepared batch out.

Each output row keeps its row key, the first rejection reason that applies (or null), and the converted
values (event time as Unix seconds, numbers as numbers, upper-cased currency). Emails and phones go through
`ttsync.identity.Preparer` (the same normalization and hashing rules as audiences); only hashes come out.
Grouping rows into events and building the payload happen next (`ttsync.events.grouping`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from ttsync.events.columns import ColumnPlan
from ttsync.events.convert import (
    as_float,
    as_string,
    blank,
    derive_event_ids,
    not_in,
    null_if_blank,
    unix_seconds,
)
from ttsync.events.parameters import (
    CONTENT_TYPES,
    EVENT_CHANNELS,
    PARAMETERS,
    ParamType,
    allowed_event_names,
)
from ttsync.events.reasons import RejectReason
from ttsync.identity import ColumnSpec, MatchReport, Preparer
from ttsync.identity.coltypes import Role, check_schema
from ttsync.identity.prepare import identifier_texts
from ttsync.identity.report import AutoDecision
from ttsync.identity.rowkeys import KeyHasher, looks_like_identifier

# ref §3.3: offline events must have happened within the last 28 days.
MAX_EVENT_AGE: Final = timedelta(days=28)
# Warehouse and TikTok clocks disagree a little; an event up to this far ahead is treated as "now".
FUTURE_SKEW: Final = timedelta(minutes=10)
# Several emails or phones may share one cell, separated by commas (neither contains a comma).
IDENTIFIER_DELIMITER: Final = ","
# TikTok documents no limit; ids longer than this are data errors (a whole description pasted as an id) and
# would bloat the ledger that keeps every accepted id.
MAX_EVENT_ID_LENGTH: Final = 256
# Bounds that keep every number exact and finite on the wire: amounts up to a quadrillion (any summed event
# value stays finite), quantities up to the largest integer a JSON reader holds exactly.
MAX_AMOUNT: Final = 1e15
MAX_QUANTITY: Final = 2**53 - 1

_CURRENCIES: Final = pa.array(sorted(c.alpha_3 for c in pycountry.currencies))

STRING_PARAMS: Final = tuple(
    p.name
    for p in PARAMETERS
    if p.type in (ParamType.STRING, ParamType.ENUM, ParamType.EVENT_NAME, ParamType.CURRENCY)
    and p.name not in ("event_set_id", "event_source")
)

# Schema of a prepared batch (what grouping.py reads).
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
                as_string(batch.column(self.key_column), self.key_column) if n else pa.array([], pa.string())
            )
            keys = self._row_keys.protect(keys, batch.column(self.key_column) if n else None)
        reasons: dict[RejectReason, pa.Array] = {}

        def flag(reason: RejectReason, mask: pa.Array) -> None:
            mask = pc.fill_null(mask, False)
            if not mask.true_count:
                return  # no row to flag (the usual case): nothing to combine below
            reasons[reason] = pc.or_(reasons[reason], mask) if reason in reasons else mask

        flag(RejectReason.MISSING_ROW_KEY, blank(keys))
        strings: dict[str, pa.Array] = {}
        for name in STRING_PARAMS:
            column = self.plan.column(name)
            # A blank value is "not given": never sent as "" (TikTok would read an empty currency or id).
            strings[name] = (
                null_if_blank(as_string(batch.column(column), column)) if column else pa.nulls(n, pa.string())
            )

        # event
        event = pc.utf8_trim_whitespace(strings["event"])
        strings["event"] = event
        flag(RejectReason.MISSING_EVENT, blank(event))
        if self._allowed_events is not None:
            known = pc.is_in(event, value_set=pa.array(sorted(self._allowed_events)))
            flag(RejectReason.UNKNOWN_EVENT, pc.and_(pc.invert(blank(event)), pc.invert(known)))

        # timestamp -> Unix seconds
        ts_column = self.plan.column("timestamp")
        assert ts_column is not None  # plan_columns requires it
        event_time, bad_time = unix_seconds(batch.column(ts_column), self.rules.timezone)
        flag(RejectReason.MISSING_TIMESTAMP, pc.is_null(batch.column(ts_column)))
        flag(RejectReason.INVALID_TIMESTAMP, bad_time)
        flag(RejectReason.TOO_OLD, pc.less(event_time, self._oldest))
        flag(RejectReason.IN_FUTURE, pc.greater(event_time, self._newest))

        # identifiers: present at all? (identity decides which are valid)
        has_contact = _has_contact(batch, (*self.plan.emails, *self.plan.phones))

        # currency, enums
        currency = pc.utf8_upper(pc.utf8_trim_whitespace(strings["currency"]))
        strings["currency"] = currency
        flag(RejectReason.INVALID_CURRENCY, not_in(currency, _CURRENCIES))
        channel = pc.utf8_lower(pc.utf8_trim_whitespace(strings["event_channel"]))
        strings["event_channel"] = channel
        flag(RejectReason.INVALID_EVENT_CHANNEL, not_in(channel, pa.array(EVENT_CHANNELS)))
        content_type = pc.utf8_lower(pc.utf8_trim_whitespace(strings["content_type"]))
        strings["content_type"] = content_type
        flag(RejectReason.INVALID_CONTENT_TYPE, not_in(content_type, pa.array(CONTENT_TYPES)))

        # numbers
        numbers: dict[str, pa.Array] = {}
        for name in ("price", "value", "quantity"):
            column = self.plan.column(name)
            raw = batch.column(column) if column else pa.nulls(n, pa.float64())
            number, bad = as_float(raw, column or name)
            bound = MAX_QUANTITY if name == "quantity" else MAX_AMOUNT
            # Infinity (1e400 as text, or a DOUBLE column's inf) and huge values are out of range, not sent.
            out_of_range = pc.fill_null(pc.greater(pc.abs(number), bound), False)
            if name == "quantity":
                whole = pc.equal(pc.floor(number), number)
                bad = pc.or_(bad, pc.and_(pc.is_valid(number), pc.invert(pc.fill_null(whole, False))))
                bad = pc.and_(bad, pc.invert(out_of_range))
                numbers[name] = pc.cast(pc.if_else(pc.or_(bad, out_of_range), None, number), pa.int64())
            else:
                numbers[name] = pc.if_else(out_of_range, None, number)
            flag(RejectReason.INVALID_NUMBER, bad)
            flag(RejectReason.NUMBER_OUT_OF_RANGE, out_of_range)

        # event set / source in the row must match the destination
        for name, expected, reason in (
            ("event_set_id", self.rules.event_set_id, RejectReason.EVENT_SET_MISMATCH),
            ("event_source", self.rules.event_source, RejectReason.EVENT_SOURCE_MISMATCH),
        ):
            column = self.plan.column(name)
            if column:
                given = pc.utf8_trim_whitespace(as_string(batch.column(column), column))
                flag(reason, pc.and_(pc.invert(blank(given)), pc.not_equal(given, expected)))

        # web-only fields (ref §3.1: ttclid and ttp are web only; ip and user_agent web and app)
        if self.rules.event_source != "web":
            for param in PARAMETERS:
                if param.web_only:
                    flag(RejectReason.WEB_ONLY_FIELD, pc.invert(blank(strings[param.name])))

        # event_id: given (keyed-hashed when it looks personal), derived, or missing
        event_id = pc.utf8_trim_whitespace(strings["event_id"])
        if self._event_ids is not None:
            event_id = self._event_ids.protect(event_id)
        else:
            personal = looks_like_identifier(event_id)
            flag(RejectReason.PERSONAL_EVENT_ID, personal)
            if personal.true_count:
                event_id = pc.if_else(personal, pa.scalar(None, pa.string()), event_id)
        if self.rules.derive_event_id:
            event_id = derive_event_ids(
                event_id, event, event_time, strings["order_id"], strings["shop_id"], keys
            )
        strings["event_id"] = event_id
        flag(RejectReason.MISSING_EVENT_ID, blank(event_id))
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
        # identity rejects those rows as before): grouping puts hashes back on rows by position, which is
        # much cheaper than matching row-key strings.
        position_keys = pc.if_else(pc.is_null(keys), pa.scalar(None, pa.int64()), seq)
        identity_input = pa.RecordBatch.from_arrays(
            [position_keys, *[batch.column(c) for c in (*self.plan.emails, *self.plan.phones)]],
            names=["row_key", *self.plan.emails, *self.plan.phones],
        )
        ids = self._preparer.process(identity_input).ids
        return PreparedRows(rows=rows, ids=ids)


def _has_contact(batch: pa.RecordBatch, columns: tuple[str, ...]) -> pa.Array:
    """Whether each row has any non-blank email or phone (identity decides which are valid)."""
    n = batch.num_rows
    found = np.zeros(n, dtype=bool)
    for column in columns:
        values = batch.column(column)
        if (
            pa.types.is_string(values.type)
            and not pc.any(pc.match_substring(values, IDENTIFIER_DELIMITER)).as_py()
        ):
            # One value per cell (the usual case): given unless blank.
            found |= pc.invert(blank(values)).to_numpy(zero_copy_only=False)
            continue
        texts, rows = identifier_texts(values, column, IDENTIFIER_DELIMITER)
        found[pc.filter(rows, pc.invert(blank(texts))).to_numpy(zero_copy_only=False)] = True
    return pa.array(found)


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
