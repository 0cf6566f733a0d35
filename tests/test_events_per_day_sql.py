"""`events_per_day` sums the deliveries in the database: its result must equal a plain Python sum of every
stored `deliver` task's totals (bench/ui_render.py measures the speed; this checks the numbers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pg import missing_reason, postgres_server
from ttsync.app import queries
from ttsync.store import schema
from ttsync.store.db import Store

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
# orchestration -> destination: two orchestrations deliver to one destination, one audience run is noise.
ORCHESTRATIONS = {
    "shop-a": "events-main",
    "shop-b": "events-main",
    "shop-c": "events-other",
    "aud": "aud-dest",
}


def _fill(store: Store) -> None:
    """Deliveries over 12 days (some before a 7-day window, one after `NOW`) with rejects by several
    reasons, duplicates, a failed delivery (no totals), odd values and tasks that are not deliveries."""
    # Config rows inserted directly (the foreign keys need them; the sums read only names and kinds).
    stamp = {"created_at": NOW, "updated_at": NOW}
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.credentials), [{"name": "cred", "app_id": "1", "advertiser_ids": [],
                     "environment": "sandbox", "secret_env": {}, **stamp}])  # fmt: skip
        conn.execute(sa.insert(schema.sources), [{"name": "wh", "kind": "duckdb", "config": {}, **stamp}])
        conn.execute(sa.insert(schema.destinations), [{"name": d, "kind": "offline_events", "credential": "cred",
                     "environment": "sandbox", "settings": {}, **stamp} for d in set(ORCHESTRATIONS.values())])  # fmt: skip
        conn.execute(sa.insert(schema.orchestrations), [{"name": name, "source": "wh", "destination": d,
                     "query": "select 1", "settings": {}, **stamp} for name, d in ORCHESTRATIONS.items()])  # fmt: skip
    reasons = ["invalid_email_or_phone", "missing_timestamp", "bad_value"]
    workflows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for index in range(90):
        name = list(ORCHESTRATIONS)[index % 4]
        kind = "audience" if name == "aud" else "offline_events"
        at = NOW - timedelta(hours=index * 3 + 1) + (timedelta(days=2) if index == 5 else timedelta())
        wid = uuid.uuid4().hex
        workflows.append({"id": wid, "orchestration": name, "kind": kind, "state": "succeeded",
                          "created_at": at, "started_at": at, "finished_at": at, "counts": {},
                          "checkpoint": {}, "error": None})  # fmt: skip
        counts: dict[str, Any] = {"sent": 100 + index, "duplicate_skipped": index % 5,
                                  "rejected": {reasons[i]: index % (i + 2) for i in range(1 + index % 3)}}  # fmt: skip
        if index % 11 == 3:
            counts = {}  # a failed delivery stored no totals: counts nothing
        elif index % 13 == 4:
            counts = {"sent": True, "duplicate_skipped": 2.5, "rejected": {"bad_value": "7", "x": 1}}
        elif index % 17 == 6:
            counts = {"sent": 0, "rejected": None}
        for position, task in enumerate(("query", "deliver")):
            tasks.append({"workflow_id": wid, "name": task, "position": position, "state": "succeeded",
                          "attempts": 1, "started_at": at, "finished_at": at,
                          "counts": counts if task == "deliver" else {"rows": index},
                          "checkpoint": {}, "error": None})  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.workflows), workflows)
        conn.execute(sa.insert(schema.tasks), tasks)


def _plain(store: Store, days: int, destination: str | None, exclude: set[str]) -> list[queries.EventDay]:
    """The straightforward sum: every task read back, filtered and added up in Python."""
    first, today = NOW.date() - timedelta(days=days - 1), NOW.date()
    w, t = schema.workflows, schema.tasks
    with store.read() as conn:
        rows = conn.execute(sa.select(w.c.orchestration, w.c.kind, t.c.name, t.c.finished_at, t.c.counts)
                            .join(w, w.c.id == t.c.workflow_id)).all()  # fmt: skip
    out: dict[tuple[date, str], queries.EventDay] = {}

    def num(value: object) -> int:
        return value if type(value) is int else 0

    for orchestration, kind, task, finished, counts in rows:
        day = finished.replace(tzinfo=UTC).astimezone(UTC).date()
        dest = ORCHESTRATIONS[orchestration]
        if (kind != "offline_events" or task != "deliver" or "sent" not in counts or orchestration in exclude
                or not first <= day <= today or destination not in (None, dest)):  # fmt: skip
            continue
        entry = out.setdefault((day, dest), queries.EventDay(day=day, destination=dest))
        entry.runs += 1
        entry.accepted += num(counts["sent"])
        entry.duplicates += num(counts.get("duplicate_skipped"))
        for reason, n in (counts.get("rejected") or {}).items():
            entry.rejected[reason] = entry.rejected.get(reason, 0) + num(n)
            entry.rejected_total += num(n)
    return sorted(out.values(), key=lambda d: (-d.day.toordinal(), d.destination or ""))


def _check(store: Store) -> None:
    _fill(store)
    cases = [(7, None, set()), (30, None, set()), (1, None, set()), (30, "events-main", set()),
             (30, None, {"shop-b"}), (30, "events-other", {"shop-c"}), (30, "nowhere", set())]  # fmt: skip
    for days, destination, exclude in cases:
        got = queries.events_per_day(
            store, destination=destination, days=days, exclude_orchestrations=exclude, now=NOW
        )
        assert got == _plain(store, days, destination, exclude), (days, destination, exclude)
    everything = queries.events_per_day(store, days=30, now=NOW)
    # The cases are not vacuous: several reasons, duplicates and both destinations are counted.
    assert {"invalid_email_or_phone", "missing_timestamp", "bad_value", "x"} <= {
        reason for d in everything for reason in d.rejected
    }
    assert sum(d.duplicates for d in everything) > 0
    assert {d.destination for d in everything} == {"events-main", "events-other"}


def test_events_per_day_sums_like_python_on_sqlite(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'ttsync.db'}")
    try:
        _check(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


def test_events_per_day_sums_like_python_on_postgresql(pg_url: str) -> None:
    store = Store.open(pg_url)
    try:
        _check(store)
    finally:
        store.close()
