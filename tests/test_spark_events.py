"""Offline events on Spark's executors give the local path's outcomes, reasons, match report and payloads
(Spark local[2], the emulator over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RetryPolicy
from ttsync.destinations.tiktok.events import (
    EventOptions,
    EventRunResult,
    deliver_events,
    deliver_staged,
    event_rules,
)
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.columns import plan_columns
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.identity.rowkeys import KeyHasher
from ttsync.spark.events import stage_events_on_spark

NOW = datetime.now(UTC)


def _table() -> pa.Table:
    """Rows for most reasons, events whose item rows are far apart (other partitions), shared emails."""
    rows: list[dict[str, Any]] = []
    for i in range(240):
        stamp = NOW - timedelta(hours=1 + i % 30)
        row = {
            "row_key": f"r{i}",
            "email": f" Buyer{i % 150}@Example.com" if i % 11 else None,
            "phone": f"(415) 555-{i:04d}" if i % 3 == 0 else None,
            "event": "CompletePayment",
            "event_id": f"order-{i % 120}",  # rows i and i + 120: two items of one order
            "timestamp": stamp.isoformat(),
            "currency": "USD" if i % 40 else "usd",
            "content_id": f"sku-{i}",
            "price": f"{1 + i % 7}.5",
            "quantity": "2",
            "value": None,
        }
        if i % 11 == 0 and i % 3:
            row["email"] = "not-an-email"  # no valid contact
        rows.append(row)
    rows[5]["timestamp"] = "2026-13-45"
    rows[7]["timestamp"] = (NOW - timedelta(days=40)).isoformat()
    rows[9]["event"] = "Bogus"
    rows[13]["event_id"] = None
    rows[17]["currency"] = "XYZ"
    rows[19]["quantity"] = "two"
    rows[23]["event_id"] = "someone@example.com"  # looks personal: keyed-hashed
    rows[25] |= {"event_id": "alone-25", "email": None}  # no email nor phone
    rows[200]["row_key"] = "r30"  # a row key used twice, in another partition
    rows[121]["currency"] = "EUR"  # item row of order-1: the first row's currency wins
    return pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in rows[0]]))


def _settings(emu: EmulatorServer, event_set_id: str) -> ResolvedOfflineEventsSettings:
    return ResolvedOfflineEventsSettings(
        advertiser_id=emu.seed.advertiser_ids[0], event_set_id=event_set_id, timezone="UTC"
    )


def _client(emu: EmulatorServer) -> AsyncTikTokClient:
    return AsyncTikTokClient(
        access_token=emu.seed.operator_token,
        base_url=emu.base_url,
        limiters=LimiterRegistry(),
        retry=RetryPolicy(max_attempts=2, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0),
    )


def _outcomes(result: EventRunResult) -> list[tuple[Any, ...]]:
    rows = pq.read_table(result.outcomes_path).to_pylist()
    return sorted((r["row_key"], r["outcome"], r["reason"], r["event"], r["event_id"]) for r in rows)


def _payloads(emu: EmulatorServer, event_set_id: str) -> list[str]:
    """A digest of every event the emulator accepted (its JSON with sorted keys), sorted."""
    events = emu.admin.events(event_set_id)
    return sorted(hashlib.sha256(json.dumps(e, sort_keys=True).encode()).hexdigest() for e in events)


def test_spark_events_equal_the_local_path(
    spark_local: Any, emulator: EmulatorServer, tmp_path: Path
) -> None:
    table = _table()
    hasher = KeyHasher.ephemeral()
    options = EventOptions(key_hasher=hasher, default_region="US")
    local_set = emulator.seed.event_set_id
    spark_set = emulator.admin.create_event_set(emulator.seed.advertiser_ids[0])
    parquet = tmp_path / "events.parquet"
    pq.write_table(table, parquet, row_group_size=60)
    spark_local.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    frame = spark_local.read.parquet(str(parquet))
    assert frame.rdd.getNumPartitions() > 1  # the rows of one order sit in different partitions

    async def local() -> EventRunResult:
        async with _client(emulator) as client:
            with Ledger.open(tmp_path / "state") as ledger:
                # One batch, as a source reads a table this small: the local `auto` sample is the first batch's.
                return await deliver_events(
                    client, table.to_batches(), settings=_settings(emulator, local_set),
                    key_column="row_key", run_dir=tmp_path / "local", ledger=ledger, options=options, now=NOW,
                )  # fmt: skip

    async def spark(run: str) -> EventRunResult:
        settings = _settings(emulator, spark_set)
        rules = event_rules(settings, options)
        plan = plan_columns(frame.columns, key_column="row_key")
        async with _client(emulator) as client:
            with Ledger.open(tmp_path / "state") as ledger:
                staged = stage_events_on_spark(
                    frame, plan=plan, rules=rules, key_column="row_key", run_dir=tmp_path / run, ledger=ledger,
                    namespace=ledger_namespace(spark_set, None), key_hasher=hasher, now=NOW,
                )  # fmt: skip
                return await deliver_staged(
                    client, staged, settings=settings, run_dir=tmp_path / run, ledger=ledger
                )

    expected = asyncio.run(local())
    got = asyncio.run(spark("spark1"))
    assert got.totals.to_dict() | {"requests": 0} == expected.totals.to_dict() | {"requests": 0}
    assert set(expected.totals.rejected) >= {
        "invalid_timestamp", "too_old", "unknown_event", "missing_event_id", "invalid_currency",
        "invalid_number", "duplicate_row_key", "missing_email_or_phone", "invalid_email_or_phone",
    }  # fmt: skip
    assert expected.totals.sent > 50
    assert _outcomes(got) == _outcomes(expected)
    assert got.match_report.to_dict() == expected.match_report.to_dict()
    assert expected.match_report.types[0].duplicates > 0
    assert _payloads(emulator, spark_set) == _payloads(emulator, local_set)
    assert not (tmp_path / "spark1" / "spark_events").exists()  # hashes and event fields are cleaned up

    # A re-run sends nothing new: tests/test_scale_parity.py runs it through the CLI (a child with its own JVM).
