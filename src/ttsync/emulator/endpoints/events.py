"""Events API 2.0: event/track/ (ref §3, §8.6).

The whole request fails on the first bad event with a 40002 naming ``data.N.field`` (ref §3.4: errors are
whole-request, with a field path). Accepted events are de-duplicated on (event_source_id, event, event_id)
within 48 hours, the first copy winning (ref §3.3); events with a top-level ``test_event_code`` are kept
apart and never de-duplicated against real ones.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from ttsync.emulator.endpoints.common import Ctx, JsonDict, advertiser_access, endpoint
from ttsync.emulator.errors import PARAM_ERROR, PII_NOT_HASHED, ApiError, param_error
from ttsync.emulator.model import EventBatch
from ttsync.emulator.validate import MISSING, NOT_INT, NOT_STRING, one_of, opt_str, req_str

EVENT_SOURCES: Final = ("web", "app", "offline", "crm")
# Standard names for offline events: the union of the web/offline/CRM lists in ref §3.2 (TikTok renamed events
# in 2024-2025; both names are accepted). Offline events may use only these; web, app and CRM events may also
# use custom names (Go client bububa/tiktok-business model/event/track.go, ref §3.1, §9). App-only standard
# names (AchieveLevel, LaunchAPP, ...) are not offline names.
EVENT_NAMES: Final = frozenset(
    {
        # current web / offline / CRM list
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval", "CompleteRegistration", "Contact",
        "CustomizeProduct", "Download", "FindLocation", "InitiateCheckout", "Lead", "Purchase", "Schedule",
        "Search", "StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
        # older names still in use
        "ClickButton", "CompletePayment", "PlaceAnOrder", "SubmitForm", "PageView",
    }
)  # fmt: skip
STANDARD_ONLY_SOURCES: Final = frozenset({"offline"})
# Documented Events 2.0 `properties` keys (ref §3.1); the `strict-properties` variant rejects any other key,
# e.g. `event_channel`, which only the legacy offline payload has.
PROPERTY_KEYS: Final = frozenset(
    {
        "currency", "value", "contents", "content_type", "content_ids", "num_items", "order_id", "shop_id",
        "description", "query", "search_string",
    }
)  # fmt: skip
INVALID_PARTNER_NAME: Final = 40063  # SDK tiktok_code.py (ref §3.4)
_EVENT_PATH = re.compile(r"^data\.(\d+)(?:\.([^:]*))?: (.*)$", re.DOTALL)
MAX_EVENTS: Final = 1_000  # ref §3.1
HASHED_USER_FIELDS: Final = ("email", "phone", "external_id")  # SHA-256 lowercase hex (ref §6.1)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX_AND_NEWLINE: Final = b"0123456789abcdef\n"
BAD_SOURCE_ID: Final = "Invalid value for event_source_id: not a valid string."  # observed wording (ref §3.5)


def _check_user(user: object, prefix: str) -> None:
    if not isinstance(user, dict):
        raise param_error(prefix, "Not a valid object")
    for key in HASHED_USER_FIELDS:
        value = user.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for j, item in enumerate(values):
            path = f"{prefix}.{key}" if value is not values else f"{prefix}.{key}.{j}"
            if not isinstance(item, str):
                raise param_error(path, NOT_STRING)
            if item and _SHA256.fullmatch(item) is None:
                # Emulator choice: 40062 PII_NOT_HASHED (ref §3.4, §6.1) for values that are not SHA-256 hex.
                raise ApiError(
                    PII_NOT_HASHED, f"{path}: must be SHA-256 hashed (64 lowercase hex characters)"
                )


def _check_properties(props: object, prefix: str) -> None:
    if not isinstance(props, dict):
        raise param_error(prefix, "Not a valid object")
    value = props.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise param_error(f"{prefix}.value", "Not a valid number")
    currency = props.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise param_error(f"{prefix}.currency", NOT_STRING)
    contents = props.get("contents")
    if contents is not None and not isinstance(contents, list):
        raise param_error(f"{prefix}.contents", "Not a valid list")


def _event_key(source_id: str, name: str, event_id: object) -> bytes | None:
    if not event_id:
        return None
    return hashlib.blake2b(f"{source_id}\x00{name}\x00{event_id}".encode(), digest_size=16).digest()


def _checked_keys(data: list[object], source_id: str, check_names: bool) -> list[bytes | None]:
    """Check every event in order; raise the error for the first problem. Returns the dedupe keys."""
    keys: list[bytes | None] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise param_error(f"data.{i}", "Not a valid object")
        name = item.get("event")
        if not isinstance(name, str):
            raise param_error(f"data.{i}.event", MISSING if name is None else NOT_STRING)
        if check_names and name not in EVENT_NAMES:
            raise param_error(
                f"data.{i}.event", f"Invalid event name {name!r}: not a supported standard event"
            )
        event_time = item.get("event_time")
        if event_time is None:
            raise param_error(f"data.{i}.event_time", MISSING)
        if isinstance(event_time, bool) or not isinstance(event_time, int):
            raise param_error(f"data.{i}.event_time", NOT_INT)
        event_id = item.get("event_id")
        if event_id is not None and not isinstance(event_id, str):
            raise param_error(f"data.{i}.event_id", NOT_STRING)
        user = item.get("user")
        if user is not None:
            _check_user(user, f"data.{i}.user")
        props = item.get("properties")
        if props is not None:
            _check_properties(props, f"data.{i}.properties")
        keys.append(_event_key(source_id, name, event_id))
    return keys


def _fast_keys(data: list[object], source_id: str, check_names: bool) -> list[bytes | None] | None:
    """The dedupe keys if every event passes, else None (then `_checked_keys` names the first problem).

    Accepts exactly what `_checked_keys` accepts or less (exact `type(...) is` checks, all hashes matched at
    once), so a batch it passes is a batch the full checks pass; it only skips building error paths and
    checking hashes one by one (most of the handler's time for a valid batch of 1,000).
    """
    hashes: list[str] = []
    keys: list[bytes | None] = []
    blake2b = hashlib.blake2b
    names = EVENT_NAMES
    prefix = f"{source_id}\x00"
    for item in data:
        if type(item) is not dict:
            return None
        name = item.get("event")
        if type(name) is not str or (check_names and name not in names):
            return None
        if type(item.get("event_time")) is not int:
            return None
        event_id = item.get("event_id")
        if event_id is not None and type(event_id) is not str:
            return None
        user = item.get("user")
        if user is not None:
            if type(user) is not dict:
                return None
            for key in HASHED_USER_FIELDS:
                value = user.get(key)
                if value is None:
                    continue
                if type(value) is list:
                    for one in value:
                        if type(one) is not str:
                            return None
                        if one:
                            hashes.append(one)
                elif type(value) is str:
                    if value:
                        hashes.append(value)
                else:
                    return None
        props = item.get("properties")
        if props is not None:
            if type(props) is not dict:
                return None
            value = props.get("value")
            if value is not None and type(value) is not float and type(value) is not int:
                return None
            currency = props.get("currency")
            if currency is not None and type(currency) is not str:
                return None
            contents = props.get("contents")
            if contents is not None and type(contents) is not list:
                return None
        keys.append(
            blake2b(f"{prefix}{name}\x00{event_id}".encode(), digest_size=16).digest() if event_id else None
        )
    if hashes and not _all_sha256_hex(hashes):
        return None
    return keys


def _all_sha256_hex(hashes: list[str]) -> bool:
    """Whether every string is 64 lowercase hex characters (`_SHA256`), checked on all of them at once.

    Joined with newlines: the length and the newlines (exactly one every 65 characters, and no other) make
    each string exactly 64 characters long; deleting every hex digit and newline must then leave nothing.
    """
    joined = "\n".join(hashes)
    n = len(hashes)
    if len(joined) != 65 * n - 1 or joined.count("\n") != n - 1 or joined[64::65] != "\n" * (n - 1):
        return False
    try:
        raw = joined.encode("ascii")
    except UnicodeEncodeError:
        return False
    return not raw.translate(None, _HEX_AND_NEWLINE)


@endpoint("event/track/", "POST")
def event_track(ctx: Ctx) -> JsonDict:
    """Receive 1–1,000 events for one event source."""
    p = ctx.params
    state = ctx.state
    source = one_of(req_str(p, "event_source"), EVENT_SOURCES, "event_source")
    source_id = p.get("event_source_id")
    if source_id is None:
        raise param_error("event_source_id", MISSING)
    if not isinstance(source_id, str):
        raise ApiError(PARAM_ERROR, BAD_SOURCE_ID)
    event_set = state.event_sets.get(source_id)
    if event_set is None or event_set.kind != source:
        raise ApiError(PARAM_ERROR, BAD_SOURCE_ID)
    advertiser_access(ctx, event_set.advertiser_id, write=True)
    test_code = opt_str(p, "test_event_code")
    partner = opt_str(p, "partner_name")
    if (
        partner is not None
        and state.config.has("partner-name-registered")
        and (partner not in state.config.partner_names)
    ):
        # Variant: 40063 INVALID_PARTNER_NAME exists (SDK tiktok_code.py); whether TikTok checks partner names
        # against a registry is unknown (ref §9).
        raise ApiError(INVALID_PARTNER_NAME, f"Invalid partner name: {partner}")
    data = p.get("data")
    if data is None:
        raise param_error("data", MISSING)
    if not isinstance(data, list):
        raise param_error("data", "Not a valid list")
    if not 1 <= len(data) <= MAX_EVENTS:
        raise param_error("data", f"Length must be between 1 and {MAX_EVENTS}")

    check_names = source in STANDARD_ONLY_SOURCES  # only offline events are limited to standard names
    try:
        if state.config.has("strict-properties"):
            _check_property_keys(data)
        keys = _fast_keys(data, source_id, check_names)
        if keys is None:
            # Something in the batch is off: the exact checks below find the first problem and name it.
            keys = _checked_keys(data, source_id, check_names)
    except ApiError as exc:
        raise _reworded(exc, state.config.variants) from None

    stats = state.event_stats
    stats.received += len(data)
    now = ctx.now
    accepted: list[int] | None
    if test_code:
        accepted = None
        stats.test += len(data)
        target = state.test_event_batches
    else:
        state.prune_dedupe(now)
        dedupe = state.dedupe
        window = state.config.dedupe_window
        kept: list[int] = []
        new_keys: list[tuple[bytes, float]] = []
        for i, key in enumerate(keys):
            if key is not None:
                first = dedupe.get(key)
                if first is not None and now - first < window:
                    continue  # duplicate within 48 hours: the first copy wins (ref §3.3)
                dedupe[key] = now
                new_keys.append((key, now))
            kept.append(i)
        stats.accepted += len(kept)
        stats.deduplicated += len(data) - len(kept)
        accepted = None if len(kept) == len(data) else kept
        target = state.event_batches
        if new_keys and state.journal is not None:
            state.journal.dedupe_keys(new_keys)
        if not kept:
            return {}
    count = len(data) if accepted is None else len(accepted)
    if stats.stored + count <= state.config.max_stored_events:
        batch = EventBatch(source_id, source, now, ctx.body, accepted, test_code)
        target.setdefault(source_id, []).append(batch)
        stats.stored += count
        if state.journal is not None:
            state.journal.events_stored(batch)
    return {}


def _check_property_keys(data: list[object]) -> None:
    """Variant `strict-properties`: 40002 for a `properties` key Events 2.0 does not document (ref §3.1, §9)."""
    for i, item in enumerate(data):
        props = item.get("properties") if isinstance(item, dict) else None
        if isinstance(props, dict):
            for key in props:
                if key not in PROPERTY_KEYS:
                    raise param_error(f"data.{i}.properties.{key}", "Unknown field.")


def _reworded(exc: ApiError, variants: list[str]) -> ApiError:
    """A bad event's message in the selected format (ref §3.4, §9).

    Default `data.N.field: problem`; variant `error-field-only` names only the field, as observed on real
    TikTok ("Invalid value for event_source_id: not a valid string.", stape-io/tiktok-tag issue 33); variant
    `error-batch-index` uses `Batch.N.field`, as /pixel/batch/ answers do (RudderStack test fixtures).
    """
    match = _EVENT_PATH.match(exc.message)
    if match is None:
        return exc
    index, field, problem = match.groups()
    if "error-field-only" in variants:
        return ApiError(exc.code, f"Invalid value for {field or 'event'}: {problem}")
    if "error-batch-index" in variants:
        return ApiError(exc.code, f"Batch.{index}{'.' + field if field else ''}: {problem}")
    return exc
