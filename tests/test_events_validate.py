"""Validation, grouping and payload building of offline events (real Arrow batches, real DuckDB staging)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.destinations.tiktok.events import EventOptions, plan_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.columns import EventColumnsError, plan_columns
from ttsync.events.convert import blank
from ttsync.events.grouping import EventGrouper
from ttsync.events.ledger import Ledger
from ttsync.events.payload import GroupedEvent, assemble
from ttsync.events.validate import EventRules, RowValidator

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVENT_SET = "7000000000000000001"
ALICE_HASH = hashlib.sha256(b"alice@example.com").hexdigest()
PHONE_HASH = hashlib.sha256(b"+12065550100").hexdigest()


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "row_key": "r1",
        "email": "Alice@Example.com ",
        "event": "CompletePayment",
        "event_id": "o-1",
        "timestamp": "2026-11-19T10:00:00Z",
        "currency": "usd",
        "value": 10.5,
    }
    row.update(overrides)
    return row


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    table = [{c: r.get(c) for c in columns} for r in rows]
    for column in columns:
        # A column mixing text and numbers is a text column (as a CSV source would give it).
        if len({type(r[column]) for r in table if r[column] is not None}) > 1:
            for r in table:
                r[column] = None if r[column] is None else str(r[column])
    return pa.RecordBatch.from_pylist(table)


def _group(
    tmp_path: Path,
    rows: list[dict[str, Any]],
    *,
    rules: EventRules | None = None,
    cuts: tuple[int, ...] = (),
) -> tuple[dict[str, GroupedEvent], dict[str, str]]:
    """Validate and group rows (as batches cut before the row numbers in `cuts`); returns (events by event_id,
    reason by row key)."""
    batch = _batch(rows)
    rules = rules or EventRules(event_set_id=EVENT_SET)
    plan = plan_columns(batch.schema.names, key_column="row_key", derive_event_id=rules.derive_event_id)
    validator = RowValidator(plan, rules, key_column="row_key", now=NOW)
    grouper = EventGrouper()
    bounds = [0, *cuts, len(rows)]
    grouped = [grouper.add(validator.process(batch.slice(a, b - a))) for a, b in itertools.pairwise(bounds)]
    grouped.append(grouper.finish())
    ready: dict[str, GroupedEvent] = {}
    reasons: dict[str, str] = {}
    for events, rejected in assemble(b for b in grouped if b is not None):
        assert not set(ready) & {e.event_id for e in events}, "an event was grouped in two parts"
        ready.update({e.event_id: e for e in events})
        for keys, reason in rejected:
            reasons.update(dict.fromkeys(keys, reason))
    return ready, reasons


def test_valid_event_payload_has_hashes_seconds_and_numbers(tmp_path: Path) -> None:
    ready, reasons = _group(tmp_path, [_row(phone="+1 (206) 555-0100", ip=None)])
    assert reasons == {}
    payload = ready["o-1"].payload
    assert payload == {
        "event": "CompletePayment",
        "event_id": "o-1",
        "event_time": int(datetime(2026, 11, 19, 10, tzinfo=UTC).timestamp()),
        "user": {"email": [ALICE_HASH], "phone": [PHONE_HASH]},
        "properties": {"currency": "USD", "value": 10.5},
    }


def test_item_rows_become_one_event_with_contents_and_summed_value(tmp_path: Path) -> None:
    rows = [
        _row(row_key="a", content_id="sku-1", price=2.0, quantity=3, value=6.0),
        _row(row_key="other", event_id="o-2", content_id="sku-9", price=1.0, quantity=1, value=1.0),
        _row(
            row_key="b",
            email=None,
            phone="+12065550100",
            content_id="sku-2",
            price=4.0,
            quantity=1,
            value=4.0,
        ),
    ]
    ready, reasons = _group(tmp_path, rows)
    assert reasons == {}
    event = ready["o-1"]
    assert event.row_keys == ["a", "b"]
    props = event.payload["properties"]
    assert props["value"] == 10.0
    assert props["contents"] == [
        {"content_id": "sku-1", "price": 2.0, "quantity": 3},
        {"content_id": "sku-2", "price": 4.0, "quantity": 1},
    ]
    assert event.payload["user"] == {"email": [ALICE_HASH], "phone": [PHONE_HASH]}


def test_value_defaults_to_price_times_quantity(tmp_path: Path) -> None:
    rows = [
        {k: v for k, v in _row(row_key="a", price=2.5, quantity=2).items() if k != "value"},
        {k: v for k, v in _row(row_key="b", price=1.0, quantity=None).items() if k != "value"},
    ]
    ready, _ = _group(tmp_path, rows)
    assert ready["o-1"].payload["properties"]["value"] == 6.0


@pytest.mark.parametrize(
    ("timestamp", "zone", "expected"),
    [
        ("2026-11-19T10:00:00+02:00", "UTC", datetime(2026, 11, 19, 8, tzinfo=UTC)),
        ("2026-11-19 10:00:00", "America/New_York", datetime(2026, 11, 19, 15, tzinfo=UTC)),
        ("2026-11-19", "UTC", datetime(2026, 11, 19, tzinfo=UTC)),
        ("2026-11-19T10:00:00.123456789Z", "UTC", datetime(2026, 11, 19, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_with_and_without_zone(
    tmp_path: Path, timestamp: str, zone: str, expected: datetime
) -> None:
    rules = EventRules(event_set_id=EVENT_SET, timezone=zone)
    ready, reasons = _group(tmp_path, [_row(timestamp=timestamp)], rules=rules)
    assert reasons == {}
    assert ready["o-1"].payload["event_time"] == int(expected.timestamp())


def test_arrow_timestamp_columns(tmp_path: Path) -> None:
    naive = pa.array([datetime(2026, 11, 19, 10)], pa.timestamp("us"))
    batch = _batch([_row()]).set_column(4, "timestamp", naive)
    rules = EventRules(event_set_id=EVENT_SET, timezone="Europe/Paris")
    plan = plan_columns(batch.schema.names, key_column="row_key")
    prepared = RowValidator(plan, rules, key_column="row_key", now=NOW).process(batch)
    assert prepared.rows.column("event_time").to_pylist() == [
        int(datetime(2026, 11, 19, 9, tzinfo=UTC).timestamp())
    ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"event": ""}, "missing_event"),
        ({"event": "PageView"}, "unknown_event"),
        ({"event": "completepayment"}, "unknown_event"),
        ({"event_id": None}, "missing_event_id"),
        ({"timestamp": None}, "missing_timestamp"),
        ({"timestamp": "19/11/2026"}, "invalid_timestamp"),
        ({"timestamp": "2026-13-40T10:00:00Z"}, "invalid_timestamp"),
        ({"timestamp": (NOW - timedelta(days=29)).isoformat()}, "too_old"),
        ({"timestamp": (NOW + timedelta(minutes=30)).isoformat()}, "in_future"),
        ({"email": None}, "missing_email_or_phone"),
        ({"email": "not an email"}, "invalid_email_or_phone"),
        ({"currency": "XYZ"}, "invalid_currency"),
        ({"value": "ten"}, "invalid_number"),
        ({"quantity": 1.5}, "invalid_number"),
        ({"event_channel": "fax"}, "invalid_event_channel"),
        ({"content_type": "service"}, "invalid_content_type"),
        ({"event_set_id": "999"}, "event_set_mismatch"),
        ({"event_source": "web"}, "event_source_mismatch"),
        ({"ip": "203.0.113.9"}, "web_only_field"),
        ({"tiktok_click_id": "abc"}, "web_only_field"),
        ({"row_key": None}, "missing_row_key"),
    ],
)
def test_each_rejection_reason(tmp_path: Path, overrides: dict[str, Any], reason: str) -> None:
    good = _row(row_key="good", event_id="o-good")
    bad = _row(**{"row_key": "bad", **overrides})
    ready, reasons = _group(tmp_path, [good, bad])
    assert "o-good" in ready
    assert set(reasons.values()) == {reason}
    if overrides.get("row_key", "bad") is not None:
        assert reasons == {"bad": reason}


def test_near_future_and_28_day_old_events_are_kept(tmp_path: Path) -> None:
    rows = [
        _row(row_key="a", event_id="a", timestamp=(NOW + timedelta(minutes=5)).isoformat()),
        _row(row_key="b", event_id="b", timestamp=(NOW - timedelta(days=27, hours=23)).isoformat()),
    ]
    ready, reasons = _group(tmp_path, rows)
    assert reasons == {}
    assert set(ready) == {"a", "b"}


def test_one_bad_item_row_rejects_the_whole_event(tmp_path: Path) -> None:
    rows = [_row(row_key="a", price=1.0), _row(row_key="b", price="oops")]
    ready, reasons = _group(tmp_path, rows)
    assert ready == {}
    assert reasons == {"a": "invalid_number", "b": "invalid_number"}


def test_duplicate_row_keys_are_rejected(tmp_path: Path) -> None:
    rows = [_row(row_key="same", event_id="x"), _row(row_key="same", event_id="y")]
    ready, reasons = _group(tmp_path, rows)
    assert ready == {}
    assert reasons == {"same": "duplicate_row_key"}


def test_web_events_keep_web_fields_unhashed(tmp_path: Path) -> None:
    rules = EventRules(event_set_id=EVENT_SET, event_source="web")
    row = _row(
        event="PageView", ip="203.0.113.9", agent="Mozilla/5.0", cookie_id="ttp1", tiktok_click_id="cl1"
    )
    ready, reasons = _group(tmp_path, [row], rules=rules)
    assert reasons == {}
    assert ready["o-1"].payload["user"] == {
        "email": [ALICE_HASH],
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "ttp": "ttp1",
        "ttclid": "cl1",
    }


def test_derived_event_ids_are_deterministic_and_group_by_order(tmp_path: Path) -> None:
    rules = EventRules(event_set_id=EVENT_SET, derive_event_id=True)
    rows = [
        _row(row_key="a", event_id=None, order_id="ord-7", content_id="s1"),
        _row(row_key="b", event_id=None, order_id="ord-7", content_id="s2"),
        _row(row_key="c", event_id=None),
        _row(row_key="d", event_id="given"),
    ]
    first, reasons = _group(tmp_path, rows, rules=rules)
    again, _ = _group(tmp_path, rows, rules=rules)
    assert reasons == {}
    assert set(first) == set(again)
    assert "given" in first
    by_rows = {tuple(e.row_keys): e.event_id for e in first.values()}
    assert set(by_rows) == {("a", "b"), ("c",), ("d",)}
    t = int(datetime(2026, 11, 19, 10, tzinfo=UTC).timestamp())
    text = f"ttsync-event-id-v1|CompletePayment|{t}|order:ord-7|"
    assert by_rows[("a", "b")] == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_columns_missing_or_ambiguous_raise_before_sending() -> None:
    with pytest.raises(EventColumnsError, match="event_id"):
        plan_columns(["row_key", "email", "event", "timestamp"], key_column="row_key")
    with pytest.raises(EventColumnsError, match="email or phone"):
        plan_columns(["row_key", "event", "event_id", "timestamp"], key_column="row_key")
    with pytest.raises(EventColumnsError, match="both stand for"):
        plan_columns(
            ["row_key", "email", "event", "event_id", "timestamp", "agent", "user_agent"],
            key_column="row_key",
        )
    plan = plan_columns(
        ["id", "mail", "event", "order_ref", "ts", "extra"],
        key_column="id",
        attribute_mapping={"mail": "emails", "order_ref": "event_id", "ts": "timestamp"},
    )
    assert plan.emails == ("mail",)
    assert plan.column("event_id") == "order_ref"
    assert plan.ignored == ("extra",)


def test_plan_counts_and_per_row_outcomes(tmp_path: Path) -> None:
    settings = ResolvedOfflineEventsSettings(advertiser_id="1", event_set_id=EVENT_SET)
    rows = [
        _row(row_key="a"),
        _row(row_key="b", content_id="x"),
        _row(row_key="c", event_id="o-2", currency="??"),
    ]
    with Ledger.open(tmp_path / "state") as ledger:
        ledger.record(EVENT_SET, [("CompletePayment", "o-1")])
        result = plan_events(
            [_batch(rows)],
            settings=settings,
            key_column="row_key",
            run_dir=tmp_path / "run",
            ledger=ledger,
            options=EventOptions(),
            now=NOW,
        )
    assert result.totals.to_dict() | {"rejected": dict(result.totals.rejected)} == {
        "rows": 3,
        "events": 2,
        "sent": 0,
        "planned": 0,
        "duplicate_skipped": 1,
        "rejected": {"invalid_currency": 1},
        "rejected_total": 1,
        "requests": 0,
    }
    outcomes = pq.read_table(result.outcomes_path).to_pylist()
    assert sorted((o["row_key"], o["outcome"], o["reason"]) for o in outcomes) == [
        ("a", "duplicate_skipped", None),
        ("b", "duplicate_skipped", None),
        ("c", "rejected", "invalid_currency"),
    ]


def test_several_emails_in_one_cell_and_across_rows_are_sent_once_each_sorted(tmp_path: Path) -> None:
    bob = hashlib.sha256(b"bob@example.com").hexdigest()
    rows = [
        _row(row_key="a", email="bob@example.com,alice@example.com"),
        _row(row_key="b", email="Alice@Example.com"),
    ]
    ready, reasons = _group(tmp_path, rows)
    assert reasons == {}
    assert ready["o-1"].payload["user"] == {"email": sorted([ALICE_HASH, bob])}
    assert ready["o-1"].row_keys == ["a", "b"]


def test_an_event_whose_rows_straddle_batches_is_one_event(tmp_path: Path) -> None:
    rows = [
        _row(row_key="a", event_id="o-1", content_id="sku-1", value=1.0),
        _row(row_key="b", event_id="o-2", content_id="sku-1", value=2.0),
        _row(row_key="c", event_id="o-2", content_id="sku-2", value=3.0),
        _row(row_key="d", event_id="o-2", content_id="sku-3", value=4.0),
        _row(row_key="e", event_id="o-3", value=5.0),
    ]
    # o-2 begins in the first batch, fills the second and ends in the third.
    ready, reasons = _group(tmp_path, rows, cuts=(2, 3))
    assert reasons == {}
    assert ready["o-2"].row_keys == ["b", "c", "d"]
    props = ready["o-2"].payload["properties"]
    assert props["value"] == 9.0
    assert [c["content_id"] for c in props["contents"]] == ["sku-1", "sku-2", "sku-3"]
    assert sorted(ready) == ["o-1", "o-2", "o-3"]


def test_a_row_key_repeated_across_a_batch_boundary_is_rejected(tmp_path: Path) -> None:
    rows = [
        _row(row_key="a", event_id="x"),
        _row(row_key="same", event_id="y"),
        _row(row_key="same", event_id="z"),
    ]
    ready, reasons = _group(tmp_path, rows, cuts=(2,))
    assert set(ready) == {"x"}
    assert reasons == {"same": "duplicate_row_key"}


@pytest.mark.parametrize(
    "text",
    ['say "hi"', "back\\slash", "line\nbreak\ttab", "nul\x00", "café ☕ 東京", "</script>", "a\u2028b"],
)
def test_strings_are_escaped_as_json(tmp_path: Path, text: str) -> None:
    rules = EventRules(event_set_id=EVENT_SET, event_source="web")
    row = _row(event=f"Custom {text}", event_id=f"id {text}", content_id=text, agent=text, order_id=text)
    ready, reasons = _group(tmp_path, [row, _row(row_key="plain", event_id="plain")], rules=rules)
    assert reasons == {}
    payload = ready[f"id {text}"].payload
    assert payload["event"] == f"Custom {text}"
    assert payload["user"]["user_agent"] == text
    assert payload["properties"]["order_id"] == text
    assert payload["properties"]["contents"] == [{"content_id": text}]
    assert ready["plain"].payload["properties"] == {"currency": "USD", "value": 10.5}


def test_fields_given_on_some_rows_only_are_left_out_elsewhere(tmp_path: Path) -> None:
    rules = EventRules(event_set_id=EVENT_SET, event_source="web")
    rows = [
        _row(row_key="a", event_id="1", ip="203.0.113.9", currency=None, value=None),
        _row(row_key="b", event_id="2", email=None, phone="+12065550100", shop_id="s1", content_id="sku"),
        _row(row_key="c", event_id="3", currency=None, value=None, order_id=None),
    ]
    ready, reasons = _group(tmp_path, rows, rules=rules)
    assert reasons == {}
    assert ready["1"].payload["user"] == {"email": [ALICE_HASH], "ip": "203.0.113.9"}
    assert "properties" not in ready["1"].payload
    assert ready["2"].payload["user"] == {"phone": [PHONE_HASH]}
    assert ready["2"].payload["properties"] == {
        "currency": "USD",
        "shop_id": "s1",
        "value": 10.5,
        "contents": [{"content_id": "sku"}],
    }
    assert "properties" not in ready["3"].payload


def test_rows_of_an_event_apart_take_the_first_given_values_in_query_order(tmp_path: Path) -> None:
    # The rows of o-1 are not adjacent (another event and a rejected row between them): grouping puts them
    # in event order, reads event-level values at the first row that has them, and keeps query order.
    rows = [
        _row(row_key="a", currency=None, shop_id=None, value=None, content_id="sku-1", price=1.5),
        _row(row_key="x", event_id=None),
        _row(row_key="b", event_id="o-2", email="bob@example.com", value=None),
        _row(row_key="c", email=None, phone="+12065550100", currency="eur", shop_id="s1", value=None),
        _row(
            row_key="d", currency="gbp", shop_id="s2", value=None, content_id="sku-3", price=2.0, quantity=2
        ),
        _row(row_key="e", event_id="o-3"),  # the last event is carried to the end: after o-1 and o-2
    ]
    ready, reasons = _group(tmp_path, rows)
    assert reasons == {"x": "missing_event_id"}
    assert list(ready) == ["o-1", "o-2", "o-3"]
    event = ready["o-1"]
    assert event.row_keys == ["a", "c", "d"]
    assert event.payload["user"] == {"email": [ALICE_HASH], "phone": [PHONE_HASH]}
    assert event.payload["properties"] == {
        "currency": "EUR",
        "shop_id": "s1",
        "value": 5.5,
        "contents": [
            {"content_id": "sku-1", "price": 1.5},
            {"content_id": "sku-3", "price": 2.0, "quantity": 2},
        ],
    }
    assert ready["o-2"].row_keys == ["b"]
    assert "value" not in ready["o-2"].payload.get("properties", {})


def test_the_last_event_of_a_chunk_is_carried_whole_when_its_rows_are_apart(tmp_path: Path) -> None:
    rows = [
        _row(row_key="a"),
        _row(row_key="b", event_id="o-2"),
        _row(row_key="c"),  # o-1 again, last of the first chunk: a and c are carried, not only c
        _row(row_key="d"),
        _row(row_key="e", event_id="o-3"),
    ]
    ready, reasons = _group(tmp_path, rows, cuts=(3,))
    assert reasons == {}
    assert {key: event.row_keys for key, event in ready.items()} == {
        "o-2": ["b"],
        "o-1": ["a", "c", "d"],
        "o-3": ["e"],
    }


def test_a_row_key_used_again_in_a_later_chunk_rejects_the_later_event(tmp_path: Path) -> None:
    # Four source batches, so four chunks: "same" is grouped (and would be sent) with the first chunk, two
    # chunks before it comes back.
    settings = ResolvedOfflineEventsSettings(advertiser_id="1", event_set_id=EVENT_SET)
    batches = [
        _batch([_row(row_key="same", event_id="o-1"), _row(row_key="a", event_id="o-2")]),
        _batch([_row(row_key="b", event_id="o-3")]),
        _batch([_row(row_key="e", event_id="o-4"), _row(row_key="c", event_id="o-5")]),
        _batch([_row(row_key="d", event_id="o-6"), _row(row_key="same", event_id="o-7")]),
    ]
    with Ledger.open(tmp_path / "state") as ledger:
        result = plan_events(
            batches, settings=settings, key_column="row_key", run_dir=tmp_path / "run", ledger=ledger, now=NOW
        )
    assert (result.totals.planned, dict(result.totals.rejected)) == (6, {"duplicate_row_key": 1})
    outcomes = pq.read_table(result.outcomes_path).to_pylist()
    assert sorted((o["row_key"], o["outcome"], o["reason"]) for o in outcomes if o["row_key"] == "same") == [
        ("same", "planned", None),
        ("same", "rejected", "duplicate_row_key"),
    ]


def test_blank_means_null_empty_or_only_whitespace() -> None:
    values = [None, "", " ", "\t\n", "\u3000\u00a0", "\x85", "a", " a ", "\u200b", "\u2003x"]
    expected = [v is None or not v.strip() for v in values]
    assert blank(pa.array(values, pa.string())).to_pylist() == expected


def test_an_object_given_on_every_row_is_written_inline_with_the_same_text() -> None:
    from ttsync.events import jsontext as js

    ids = pa.array(["a", "b"])
    hashes = pa.array(["h1", "h2"])
    some = pa.array(["x", None])
    fields = [js.raw("email", hashes, '["', '"]'), js.text("ip", pa.array(["1.2.3.4", "5.6.7.8"]))]
    inlined = js.inline("user", fields, 2)
    assert inlined is not None
    nested = js.members([js.text("id", ids), js.raw("user", js.members(fields, 2), "{", "}")], 2, before="{")
    flat = js.members([js.text("id", ids), *inlined], 2, before="{", after="}")
    assert flat.to_pylist() == [t + "}" for t in nested.to_pylist()]
    assert flat[0].as_py() == '{"id":"a","user":{"email":["h1"],"ip":"1.2.3.4"}}'
    # A field missing on some row cannot be inlined (it would land outside the object on the others).
    assert js.inline("user", [*fields, js.text("ttp", some)], 2) is None
    assert js.inline("user", [js.text("ttp", pa.nulls(2, pa.string()))], 2) is None
