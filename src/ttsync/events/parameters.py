"""The offline-event parameter table, as data: the one place that says what each query column means.

Each `Parameter` is one column a query may return (the seed's "Offline events parameters" table, plus
`phone_numbers`/`emails` aliases the seed's own example uses). It says where the value goes in the Events API
2.0 payload (ref §3.1), whether it is required, whether it is web-only, whether it is hashed, and its type.
`docs/events.md` documents the same table; `tests/test_events_parameters.py` checks the two agree.

Destinations are dotted paths in one event of `event/track/` `data[]`:
- `event`, `event_id`, `event_time` are top-level in the event;
- `user.*` and `properties.*` are the nested objects;
- `properties.contents[].*` are item fields: one content object per warehouse row of the event;
- `request.*` are not in the event but in (or checked against) the request: `event_source_id`, `event_source`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class ParamType(enum.StrEnum):
    """How a column's values are checked and converted."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    CURRENCY = "currency"  # ISO 4217 alphabetic code (pycountry), upper-cased
    TIMESTAMP = "timestamp"  # ISO 8601; sent as integer Unix seconds (ref §3.1)
    ENUM = "enum"  # one of `Parameter.choices`
    EVENT_NAME = "event_name"  # TikTok standard event name (ref §3.2), see `allowed_event_names`
    EMAIL = "email"  # normalized and SHA-256 hashed by ttsync.identity
    PHONE = "phone"  # normalized to E.164 and SHA-256 hashed by ttsync.identity


class Required(enum.StrEnum):
    """Whether a column must be present."""

    YES = "yes"
    EMAIL_OR_PHONE = "email_or_phone"  # at least one usable email or phone per event
    NO = "no"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One offline-event parameter (one query column)."""

    name: str
    destination: str
    type: ParamType
    required: Required = Required.NO
    web_only: bool = False
    hashed: bool = False
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()

    @property
    def item_level(self) -> bool:
        """True for fields of one content item (one per row); False for fields of the whole event."""
        return self.destination.startswith("properties.contents[].")

    @property
    def tiktok_name(self) -> str:
        """The last part of the destination path: the name TikTok uses (e.g. `user_agent` for `agent`)."""
        return self.destination.rsplit(".", 1)[-1]


# The seed's event_channel list ("email, website, phone_call, in_store, crm, or other"). ref §3.1 notes the
# allowed values are not confirmed by TikTok's own sources.
EVENT_CHANNELS: Final = ("email", "website", "phone_call", "in_store", "crm", "other")
# ref §3.1: `content_type` is `product` or `product_group`.
CONTENT_TYPES: Final = ("product", "product_group")
# ref §3.1: event_source is web, app, offline or crm; ttsync sends offline, web and crm (app is allow-list only).
EVENT_SOURCES: Final = ("offline", "web", "crm")

_P, _T, _R = Parameter, ParamType, Required

PARAMETERS: Final[tuple[Parameter, ...]] = (
    _P("agent", "user.user_agent", _T.STRING, web_only=True),
    _P("brand", "properties.contents[].brand", _T.STRING),
    _P("content_category", "properties.contents[].content_category", _T.STRING),
    _P("content_id", "properties.contents[].content_id", _T.STRING),
    _P("content_name", "properties.contents[].content_name", _T.STRING),
    _P("content_type", "properties.content_type", _T.ENUM, choices=CONTENT_TYPES),
    _P("cookie_id", "user.ttp", _T.STRING, web_only=True),
    _P("currency", "properties.currency", _T.CURRENCY),
    _P("email", "user.email", _T.EMAIL, _R.EMAIL_OR_PHONE, hashed=True, aliases=("emails",)),
    _P("event", "event", _T.EVENT_NAME, _R.YES),
    _P("event_channel", "properties.event_channel", _T.ENUM, choices=EVENT_CHANNELS),
    _P("event_id", "event_id", _T.STRING, _R.YES),
    _P("event_set_id", "request.event_source_id", _T.STRING, _R.YES),
    _P("event_source", "request.event_source", _T.ENUM, choices=EVENT_SOURCES),
    _P("ip", "user.ip", _T.STRING, web_only=True),
    _P("order_id", "properties.order_id", _T.STRING),
    _P("phone", "user.phone", _T.PHONE, _R.EMAIL_OR_PHONE, hashed=True, aliases=("phone_numbers",)),
    _P("price", "properties.contents[].price", _T.NUMBER),
    _P("quantity", "properties.contents[].quantity", _T.INTEGER),
    _P("shop_id", "properties.shop_id", _T.STRING),
    _P("tiktok_click_id", "user.ttclid", _T.STRING, web_only=True),
    _P("timestamp", "event_time", _T.TIMESTAMP, _R.YES),
    _P("value", "properties.value", _T.NUMBER),
)

BY_NAME: Final = MappingProxyType({p.name: p for p in PARAMETERS})


def _lookup() -> dict[str, Parameter]:
    # Every spelling a query or a data template may use: the name, its aliases, and TikTok's own name
    # (so `user_agent`, `ttp`, `ttclid` work as column names too).
    table: dict[str, Parameter] = {}
    for param in PARAMETERS:
        for spelling in (param.name, *param.aliases, param.tiktok_name):
            table.setdefault(spelling.lower(), param)
    return table


_LOOKUP: Final = MappingProxyType(_lookup())


def parameter_for(column: str) -> Parameter | None:
    """The parameter a column name stands for (case-insensitive; aliases and TikTok names accepted)."""
    return _LOOKUP.get(column.strip().lower())


# ref §3.2: current web/offline/CRM names (GO enum/event_type.go; HELP, September 2025).
CURRENT_EVENT_NAMES: Final = frozenset(
    {
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "ApplicationApproval",
        "CompleteRegistration",
        "Contact",
        "CustomizeProduct",
        "Download",
        "FindLocation",
        "InitiateCheckout",
        "Lead",
        "Purchase",
        "Schedule",
        "Search",
        "StartTrial",
        "SubmitApplication",
        "Subscribe",
        "ViewContent",
    }
)
# ref §3.2: older names still used by connectors.
OLDER_EVENT_NAMES: Final = frozenset(
    {"ClickButton", "CompletePayment", "PlaceAnOrder", "SubmitForm", "PageView"}
)
# ref §3.2: "Supported events for offline event sets" (HELP). `Purchase` and `Lead` are added because they are
# the current names of `CompletePayment` and `SubmitForm` (TikTok renamed them in 2024-2025; ref §3.2).
OFFLINE_EVENT_NAMES: Final = frozenset(
    {
        "CompletePayment",
        "Contact",
        "Subscribe",
        "SubmitForm",
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "ClickButton",
        "CompleteRegistration",
        "Download",
        "InitiateCheckout",
        "PlaceAnOrder",
        "Search",
        "ViewContent",
        "Purchase",
        "Lead",
    }
)


def allowed_event_names(event_source: str) -> frozenset[str] | None:
    """Event names an event source accepts; None means any non-empty name.

    Offline events may use only standard names; web and app events may also use custom names, and CRM events
    use custom names (Go client bububa/tiktok-business model/event/track.go, ref §3.1, §9).
    """
    if event_source == "offline":
        return OFFLINE_EVENT_NAMES
    return None
