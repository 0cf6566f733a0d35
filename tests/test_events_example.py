"""The seed's example query runs against the sample warehouse and delivers to the emulator."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry
from ttsync.destinations.tiktok.events import EventRunResult, deliver_events, plan_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.examples import example_query
from ttsync.events.ledger import Ledger
from ttsync.sample.generator import generate
from ttsync.sources import DuckDBSource


def test_seed_example_query_plans_then_delivers(emulator: EmulatorServer, tmp_path: Path) -> None:
    warehouse = tmp_path / "sample.duckdb"
    generate(warehouse, rows=2_000)
    settings = ResolvedOfflineEventsSettings(
        advertiser_id=emulator.seed.advertiser_ids[0], event_set_id=emulator.seed.event_set_id
    )
    query = example_query(emulator.seed.event_set_id)
    source = DuckDBSource.open_database("sample", warehouse)
    try:
        with Ledger.open(tmp_path / "state") as ledger:
            # The seed's query has no key column: row keys are positions in the result ("#0", "#1", ...).
            plan = plan_events(
                source.stream(query),
                settings=settings,
                key_column=None,
                run_dir=tmp_path / "plan",
                ledger=ledger,
            )

            async def deliver() -> EventRunResult:
                async with AsyncTikTokClient(
                    access_token=emulator.seed.operator_token,
                    base_url=emulator.base_url,
                    limiters=LimiterRegistry(),
                ) as client:
                    return await deliver_events(
                        client,
                        source.stream(query),
                        settings=settings,
                        key_column=None,
                        run_dir=tmp_path / "run",
                        ledger=ledger,
                    )

            result = asyncio.run(deliver())
    finally:
        source.close()

    totals = result.totals
    assert totals.rows > 100  # about a week of the sample's orders, two lines each
    assert totals.events < totals.rows  # item rows were grouped into orders
    assert plan.totals.planned == totals.sent > 0
    assert dict(plan.totals.rejected) == dict(totals.rejected)
    # The sample has some customers without a usable email or phone; nothing else should be wrong.
    assert set(totals.rejected) <= {"missing_email_or_phone", "invalid_email_or_phone"}

    received = emulator.admin.events(emulator.seed.event_set_id)
    assert len(received) == totals.sent
    assert all(e["event"] == "CompletePayment" for e in received)
    with_items = [e for e in received if len(e["properties"]["contents"]) > 1]
    assert with_items, "orders with several lines become one event with several contents"
    event = with_items[0]
    assert event["properties"]["currency"] == "USD"
    # Documented only for the legacy offline payload (ref §3.1): validated, never sent to event/track/.
    assert all("event_channel" not in e["properties"] for e in received)
    assert {"content_id", "content_name", "content_category", "brand", "price", "quantity"} <= set(
        event["properties"]["contents"][0]
    )
    outcomes = Counter(row["outcome"] for row in pq.read_table(result.outcomes_path).to_pylist())
    assert outcomes["sent"] + outcomes["rejected"] == totals.rows
