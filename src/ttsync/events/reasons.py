"""Closed lists of per-row outcomes and rejection reasons (documented in docs/events.md).

A rejected row is reported by its row key and one of these codes, never by its values.
"""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import Final


class Outcome(enum.StrEnum):
    """What happened to one warehouse row (all rows of one event share the event's outcome)."""

    SENT = "sent"  # TikTok confirmed the batch holding this row's event
    # The event is in the ledger: TikTok accepted it in an earlier run.
    DUPLICATE_SKIPPED = "duplicate_skipped"
    REJECTED = "rejected"  # not sent; see the reason
    PLANNED = "planned"  # plan only: would be sent


class RejectReason(enum.StrEnum):
    """Why a row (and the event it belongs to) was not sent."""

    MISSING_EVENT = "missing_event"
    UNKNOWN_EVENT = "unknown_event"
    PERSONAL_EVENT_ID = "personal_event_id"
    MISSING_EVENT_ID = "missing_event_id"
    EVENT_ID_TOO_LONG = "event_id_too_long"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    MISSING_EMAIL_OR_PHONE = "missing_email_or_phone"
    INVALID_EMAIL_OR_PHONE = "invalid_email_or_phone"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_NUMBER = "invalid_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    INVALID_EVENT_CHANNEL = "invalid_event_channel"
    INVALID_CONTENT_TYPE = "invalid_content_type"
    EVENT_SET_MISMATCH = "event_set_mismatch"
    EVENT_SOURCE_MISMATCH = "event_source_mismatch"
    WEB_ONLY_FIELD = "web_only_field"
    DUPLICATE_ROW_KEY = "duplicate_row_key"
    MISSING_ROW_KEY = "missing_row_key"
    REJECTED_BY_TIKTOK = "rejected_by_tiktok"


REASON_DESCRIPTIONS: Final = MappingProxyType(
    {
        RejectReason.MISSING_EVENT: "`event` is empty.",
        RejectReason.UNKNOWN_EVENT: "`event` is not a standard TikTok event name for this event source.",
        RejectReason.PERSONAL_EVENT_ID: (
            "`event_id` looks like an email, phone or mobile advertising id and no workspace key is at hand "
            "to hash it (library use without a key; `ttsync run` always hashes it)."
        ),
        RejectReason.MISSING_EVENT_ID: "`event_id` is empty and the data template does not ask to derive it.",
        RejectReason.EVENT_ID_TOO_LONG: "`event_id` is longer than 256 characters.",
        RejectReason.MISSING_TIMESTAMP: "`timestamp` is empty.",
        RejectReason.INVALID_TIMESTAMP: "`timestamp` is not an ISO 8601 date-time.",
        RejectReason.TOO_OLD: "The event happened more than 28 days ago.",
        RejectReason.IN_FUTURE: "The event is more than 10 minutes in the future.",
        RejectReason.MISSING_EMAIL_OR_PHONE: "The event has no email and no phone.",
        RejectReason.INVALID_EMAIL_OR_PHONE: "The event has emails or phones, but none is valid.",
        RejectReason.INVALID_CURRENCY: "`currency` is not an ISO 4217 code.",
        RejectReason.INVALID_NUMBER: "`value` or `price` is not a number, or `quantity` is not a whole number.",
        RejectReason.NUMBER_OUT_OF_RANGE: "`value` or `price` is beyond ±10^15 or not finite, `quantity` is beyond "
        "±(2^53 - 1), or the event's summed value is not finite.",
        RejectReason.INVALID_EVENT_CHANNEL: "`event_channel` is not one of the allowed channels.",
        RejectReason.INVALID_CONTENT_TYPE: "`content_type` is not `product` or `product_group`.",
        RejectReason.EVENT_SET_MISMATCH: "The row's `event_set_id` is not the destination's event set.",
        RejectReason.EVENT_SOURCE_MISMATCH: "The row's `event_source` is not the destination's event source.",
        RejectReason.WEB_ONLY_FIELD: "A web-only field is set on an offline or CRM event.",
        RejectReason.DUPLICATE_ROW_KEY: "Another row has the same row key.",
        RejectReason.MISSING_ROW_KEY: "The row key is empty.",
        RejectReason.REJECTED_BY_TIKTOK: "TikTok rejected the event; the outcome carries TikTok's message.",
    }
)

# When a row fails several checks, the first in this order is reported (the list's order).
REASON_ORDER: Final[tuple[RejectReason, ...]] = tuple(RejectReason)
