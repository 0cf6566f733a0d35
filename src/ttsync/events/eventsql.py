"""The grouping query: staged rows in, one row per event out, with the event's `event/track/` JSON text.

DuckDB groups the rows of each (event, event_id) and writes each event's Events API 2.0 `data[]` item
(ref §3.1) as JSON text, so no Python object is made per event or per row. Grouping rules (docs/events.md,
"Item rows and event-level values"):

- every row with the same (event, event_id) is one event; each row with item fields is one `contents` entry,
  in query order; a row without event or event_id is an event (a rejection) of its own;
- event-level fields take the first non-empty value in query order;
- emails and phones are the distinct hashes of all the event's rows, sorted, sent as lists (ref §3.1: "a
  string or an array of strings"); ip, user agent, ttclid and ttp are sent as given (never hashed, ref §6.1);
- `value` is the sum of the rows' `value`; without any, the sum of price x quantity (quantity 1 if missing);
- if any row of the event is invalid, the whole event is rejected with the first failing row's reason (in
  query order); an event left without any valid email or phone is rejected too.

Absent fields are left out, not sent as null: each `"key":value` fragment is NULL when the value is NULL, and
`concat_ws` skips NULLs. Numbers stay numbers (`to_json` of a DOUBLE or BIGINT) and strings are escaped by
`to_json`. Events made of one row (most of them) skip the aggregation entirely (a window count tells them
apart): ordered aggregates cost several times more than a projection.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from ttsync.events.parameters import BY_NAME
from ttsync.events.reasons import RejectReason
from ttsync.sqltext import sql_literal

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
USER_LEVEL: Final = tuple((name, key) for name, where, key in EVENT_LEVEL if where == "user")
PROPERTY_LEVEL: Final = tuple((name, key) for name, where, key in EVENT_LEVEL if where == "properties")
ITEMS: Final = tuple(
    (name, BY_NAME[name].tiktok_name)
    for name in ("content_id", "content_name", "content_category", "brand", "price", "quantity")
)
# Columns of the query's result (see `events_sql`).
EVENT_COLUMNS: Final = ("event", "event_id", "row_keys", "reason", "json")


# Text columns whose values validation limits to fixed lists of plain words: quoting needs no escaping.
PLAIN_TEXT: Final = frozenset({"currency", "event_channel", "content_type"})
# Columns that may be absent from a query (everything the JSON text takes, but the event's identity).
OPTIONAL_COLUMNS: Final = (*(name for name, _, _ in EVENT_LEVEL), *(name for name, _ in ITEMS), "value")


def _pair(key: str, expr: str) -> str:
    """`"key":<json of expr>`, or NULL when expr is NULL (keys come from the parameter table: no quoting)."""
    if expr in PLAIN_TEXT:
        return f"""('"{key}":"' || {expr} || '"')"""
    return f"""('"{key}":' || to_json({expr}))"""


def _hashes(column: str) -> str:
    """A JSON array of the distinct hashes in a comma-joined column, sorted; NULL without any.

    Hashes are lowercase hex, so they need no escaping; one hash (the usual case) skips the sort.
    """
    return (
        f"""CASE WHEN {column} IS NULL THEN NULL WHEN contains({column}, ',') """
        f"""THEN '["' || array_to_string(list_sort(list_distinct(string_split({column}, ','))), '","') || '"]' """
        f"""ELSE '["' || {column} || '"]' END"""
    )


def _first(column: str) -> str:
    return f"arg_min({column}, seq) FILTER (WHERE {column} IS NOT NULL)"


def events_sql(rows_glob: str, present: Collection[str] = OPTIONAL_COLUMNS) -> str:
    """The grouping query over staged parts: columns `EVENT_COLUMNS`, one row per event, in no set order.

    `row_keys` lists the event's row keys in query order; `reason` is the rejection reason (NULL for an event
    to send); `json` is the event's `data[]` item (NULL for a rejected event). A row key used twice gets the
    reason `duplicate_row_key` (its outcomes could not be told apart). Optional columns not in `present`
    (null in every staged row) are left out of the query: they could only add NULLs.
    """
    level = [name for name, _, _ in EVENT_LEVEL if name in present]
    items = [(name, key) for name, key in ITEMS if name in present]
    item = (
        "NULLIF(concat_ws(',', " + ", ".join(["NULL"] + [_pair(key, name) for name, key in items]) + "), '')"
    )
    singles = ", ".join(
        [
            "event",
            "event_id",
            "[row_key] AS row_keys",
            "reason",
            "has_contact",
            "event_time",
            "emails",
            "phones",
            *level,
            "coalesce(value, price * coalesce(quantity, 1)) AS value",
            "item AS contents",
        ]
    )
    multis = ", ".join(
        [
            "event",
            "event_id",
            "list(row_key ORDER BY seq) AS row_keys",
            f"{_first('reason')} AS reason",
            "bool_or(has_contact) AS has_contact",
            f"{_first('event_time')} AS event_time",
            "string_agg(emails, ',') AS emails",
            "string_agg(phones, ',') AS phones",
            *(f"{_first(name)} AS {name}" for name in level),
            "coalesce(sum(value), sum(price * coalesce(quantity, 1))) AS value",
            "string_agg(item, '},{' ORDER BY seq) AS contents",
        ]
    )
    user = ", ".join(
        [
            """('"email":' || emails_json)""",
            """('"phone":' || phones_json)""",
            *(_pair(key, name) for name, key in USER_LEVEL if name in present),
        ]
    )
    properties = ", ".join(
        [
            *(_pair(key, name) for name, key in PROPERTY_LEVEL if name in present),
            _pair("value", "value"),
            """('"contents":[{' || contents || '}]')""",
        ]
    )
    no_contact = RejectReason.MISSING_EMAIL_OR_PHONE.value
    bad_contact = RejectReason.INVALID_EMAIL_OR_PHONE.value
    duplicate = RejectReason.DUPLICATE_ROW_KEY.value
    out_of_range = RejectReason.NUMBER_OUT_OF_RANGE.value  # a summed value beyond the largest double
    return f"""
WITH keyed AS (
    SELECT * REPLACE (
        CASE WHEN reason IS NULL AND count(*) OVER (PARTITION BY row_key) > 1
             THEN '{duplicate}' ELSE reason END AS reason),
        CASE WHEN coalesce(event, '') = '' OR coalesce(event_id, '') = '' THEN seq END AS solo
    FROM read_parquet({sql_literal(rows_glob)})
),
joined AS MATERIALIZED (
    SELECT *, {item} AS item, count(*) OVER (PARTITION BY event, event_id, solo) AS n
    FROM keyed
),
events AS (
    SELECT {singles} FROM joined WHERE n = 1
    UNION ALL
    SELECT {multis} FROM joined WHERE n > 1 GROUP BY event, event_id, solo
),
judged AS (
    SELECT *,
        CASE WHEN reason IS NOT NULL THEN reason
             WHEN NOT isfinite(value) THEN '{out_of_range}'
             WHEN emails IS NULL AND phones IS NULL
             THEN CASE WHEN has_contact THEN '{bad_contact}' ELSE '{no_contact}' END
        END AS verdict,
        {_hashes("emails")} AS emails_json,
        {_hashes("phones")} AS phones_json
    FROM events
)
SELECT event, event_id, row_keys, verdict AS reason,
    CASE WHEN verdict IS NULL THEN concat(
        '{{"event":', to_json(event), ',"event_id":', to_json(event_id), ',"event_time":', event_time,
        ',"user":{{', concat_ws(',', {user}), '}}',
        ',"properties":{{' || NULLIF(concat_ws(',', {properties}), '') || '}}',
        '}}')
    END AS json
FROM judged
ORDER BY event, event_id
"""
