"""Build Events API 2.0 `data[]` items (ref §3.1) from staged rows, one event per run of adjacent rows.

The rows arrive ordered by (event, event_id, query order) from `Stage.rows_by_event`, so the rows of one
event are consecutive; a row without event or event_id is an event (a rejection) of its own.

Grouping rules (docs/events.md, "Item rows and event-level values"):
- every row with the same (event, event_id) is one event; each row with item fields is one `contents` entry;
- event-level fields take the first non-empty value in query order;
- emails and phones are the distinct hashes of all the event's rows, sent as lists (ref §3.1: "a string or
  an array of strings"); ip, user agent, ttclid and ttp are sent as given (never hashed, ref §6.1);
- `value` is the sum of the rows' `value`; without any, the sum of price x quantity (quantity 1 if missing);
- if any row of the event is invalid, the whole event is rejected with the first failing row's reason
  (every row of it is reported with that reason).

Destination paths come from the parameter table (`parameters.py`); empty fields are left out, not sent as null.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from ttsync.events.parameters import BY_NAME
from ttsync.events.reasons import RejectReason

# Event-level columns -> (object, key) in the payload, from the parameter table.
_EVENT_LEVEL: Final = tuple(
    (name, *BY_NAME[name].destination.split(".", 1))
    for name in (
        "currency",
        "event_channel",
        "content_type",
        "order_id",
        "shop_id",
        "ip",
        "agent",
        "tiktok_click_id",
        "cookie_id",
    )
)
_USER_LEVEL: Final = tuple((name, key) for name, where, key in _EVENT_LEVEL if where == "user")
_PROPERTY_LEVEL: Final = tuple((name, key) for name, where, key in _EVENT_LEVEL if where == "properties")
_ITEMS: Final = tuple(
    (name, BY_NAME[name].tiktok_name)
    for name in ("content_id", "content_name", "content_category", "brand", "price", "quantity")
)


@dataclass(frozen=True, slots=True)
class GroupedEvent:
    """One event ready to send, with the warehouse rows it came from."""

    event: str
    event_id: str
    row_keys: list[str]
    payload: dict[str, Any]


class _Open:
    """The event being assembled (its rows may span two Arrow batches).

    A plain slotted class with lazily created containers: one is made per event, so its cost counts.
    """

    __slots__ = (
        "contents",
        "emails",
        "event",
        "event_id",
        "event_time",
        "has_contact",
        "items_value",
        "phones",
        "properties",
        "reason",
        "row_keys",
        "solo",
        "user",
        "value",
    )

    def __init__(self, event: str | None, event_id: str | None) -> None:
        self.event = event
        self.event_id = event_id
        self.solo = not event or not event_id  # no event or event_id: a row that cannot share an event
        self.reason: str | None = None
        self.has_contact = False
        self.event_time: int | None = None
        self.row_keys: list[str] = []
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.user: dict[str, Any] = {}
        self.properties: dict[str, Any] = {}
        self.contents: list[dict[str, Any]] = []
        self.value: float | None = None
        self.items_value: float | None = None


Rejected = tuple[list[str], str]


def _values(batch: pa.RecordBatch, names: tuple[tuple[str, str], ...]) -> list[tuple[list[Any], str]]:
    # Columns that are null in the whole batch are skipped (e.g. web-only fields of offline events).
    return [
        (batch.column(name).to_pylist(), key)
        for name, key in names
        if batch.column(name).null_count < batch.num_rows
    ]


class EventAssembler:
    """Turns staged rows whose events are adjacent (`Stage.rows_by_event`) into events and rejections."""

    def __init__(self) -> None:
        self._open: _Open | None = None

    def feed(self, batch: pa.RecordBatch) -> tuple[list[GroupedEvent], list[Rejected]]:
        """Consume one batch; returns the events completed so far (the last one may stay open)."""
        # This loop allocates a few small objects per row and none of them form reference cycles, so the
        # cyclic garbage collector only costs time here (measured: it more than doubles the loop's time).
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._feed(batch)
        finally:
            if paused:
                gc.enable()

    def _feed(self, batch: pa.RecordBatch) -> tuple[list[GroupedEvent], list[Rejected]]:
        ready: list[GroupedEvent] = []
        rejected: list[Rejected] = []
        names, ids, keys = (batch.column(n).to_pylist() for n in ("event", "event_id", "row_key"))
        reasons, contact, times = (
            batch.column(n).to_pylist() for n in ("reason", "has_contact", "event_time")
        )
        emails, phones = batch.column("emails").to_pylist(), batch.column("phones").to_pylist()
        values, prices, quantities = (batch.column(n).to_pylist() for n in ("value", "price", "quantity"))
        user_cols = _values(batch, _USER_LEVEL)
        prop_cols = _values(batch, _PROPERTY_LEVEL)
        item_cols = _values(batch, _ITEMS)
        current = self._open
        for i in range(batch.num_rows):
            name, event_id = names[i], ids[i]
            if current is None or current.solo or name != current.event or event_id != current.event_id:
                if current is not None:
                    self._close(current, ready, rejected)
                current = _Open(name, event_id)
            current.row_keys.append(keys[i])
            current.has_contact = current.has_contact or bool(contact[i])
            if current.reason is not None:
                continue  # already rejected: only its row keys matter
            if reasons[i] is not None:
                current.reason = reasons[i]
                continue
            if current.event_time is None:
                current.event_time = times[i]
            if emails[i]:
                current.emails.extend(emails[i].split(","))
            if phones[i]:
                current.phones.extend(phones[i].split(","))
            for column, key in user_cols:
                if column[i] is not None and key not in current.user:
                    current.user[key] = column[i]
            for column, key in prop_cols:
                if column[i] is not None and key not in current.properties:
                    current.properties[key] = column[i]
            if item_cols:
                item = {key: column[i] for column, key in item_cols if column[i] is not None}
                if item:
                    current.contents.append(item)
            if values[i] is not None:
                current.value = (current.value or 0.0) + values[i]
            if prices[i] is not None:
                quantity = quantities[i] if quantities[i] is not None else 1
                current.items_value = (current.items_value or 0.0) + prices[i] * quantity
        self._open = current
        return ready, rejected

    def finish(self) -> tuple[list[GroupedEvent], list[Rejected]]:
        """Close the last open event."""
        ready: list[GroupedEvent] = []
        rejected: list[Rejected] = []
        if self._open is not None:
            self._close(self._open, ready, rejected)
            self._open = None
        return ready, rejected

    @staticmethod
    def _close(event: _Open, ready: list[GroupedEvent], rejected: list[Rejected]) -> None:
        if event.reason is not None:
            rejected.append((event.row_keys, event.reason))
            return
        if not event.emails and not event.phones:
            reason = (
                RejectReason.INVALID_EMAIL_OR_PHONE
                if event.has_contact
                else RejectReason.MISSING_EMAIL_OR_PHONE
            )
            rejected.append((event.row_keys, reason.value))
            return
        # Rows without event or event_id always carry a reason, so both are set here.
        assert event.event is not None
        assert event.event_id is not None
        user = event.user
        # Several rows may repeat the same person: send each hash once, in a stable order.
        if event.phones:
            user = {"phone": _distinct(event.phones), **user}
        if event.emails:
            user = {"email": _distinct(event.emails), **user}
        properties = event.properties
        value = event.value if event.value is not None else event.items_value
        if value is not None:
            properties["value"] = value
        if event.contents:
            properties["contents"] = event.contents
        payload: dict[str, Any] = {
            "event": event.event,
            "event_id": event.event_id,
            "event_time": event.event_time,
            "user": user,
        }
        if properties:
            payload["properties"] = properties
        ready.append(GroupedEvent(event.event, event.event_id, event.row_keys, payload))


def _distinct(hashes: list[str]) -> list[str]:
    return hashes if len(hashes) == 1 else sorted(set(hashes))


def assemble(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[list[GroupedEvent], list[Rejected]]]:
    """Events and rejections, chunk by chunk, from event-ordered staged rows."""
    assembler = EventAssembler()
    for batch in batches:
        yield assembler.feed(batch)
    yield assembler.finish()
