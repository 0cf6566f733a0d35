"""Bad values reject their row (and its event) with a reason; the run goes on and sends the rest. Non-finite
numbers and empty strings are never sent (issue 10, section 3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RetryPolicy
from ttsync.destinations.tiktok.events import deliver_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.ledger import Ledger
from ttsync.events.validate import MAX_EVENT_ID_LENGTH

RECENT = datetime.now(UTC) - timedelta(days=1)


def _row(key: str, event_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "row_key": key,
        "email": f"{key}@example.com",
        "event": "CompletePayment",
        "event_id": event_id,
        "timestamp": RECENT.isoformat(),
        "currency": "USD",
        "content_id": "sku",
        "price": "2.5",
        "quantity": "1",
        "value": "2.5",
    }
    return row | values


def _deliver(emu: EmulatorServer, rows: list[dict[str, Any]], tmp_path: Path) -> Any:
    settings = ResolvedOfflineEventsSettings(
        advertiser_id=emu.seed.advertiser_ids[0], event_set_id=emu.seed.event_set_id
    )
    # Every column as text, as a CSV source gives them: one odd cell must not fail the batch.
    batch = pa.RecordBatch.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in rows[0]]))

    async def go() -> Any:
        client = AsyncTikTokClient(
            access_token=emu.seed.operator_token,
            base_url=emu.base_url,
            limiters=LimiterRegistry(),
            retry=RetryPolicy(max_attempts=1),
        )
        async with client:
            with Ledger.open(tmp_path / "state") as ledger:
                return await deliver_events(
                    client, [batch], settings=settings, key_column="row_key", run_dir=tmp_path / "run",
                    ledger=ledger,
                )  # fmt: skip

    return asyncio.run(go())


def test_bad_values_reject_their_row_and_the_rest_is_sent(emulator: EmulatorServer, tmp_path: Path) -> None:
    rows = [
        _row("good", "e-good"),
        _row("huge-quantity", "e-quantity", quantity="1e20"),
        # two item rows whose values sum beyond the largest double: Infinity is not JSON
        _row("huge-value-1", "e-value", value="1e308"),
        _row("huge-value-2", "e-value", value="1e308"),
        _row("inf-price", "e-price", price="1e400", value=None),
        _row("no-currency", "e-no-currency", currency=""),
        _row("blank-currency", "e-blank-currency", currency="   "),
        _row("long-id", "x" * (MAX_EVENT_ID_LENGTH + 1)),
        _row("max-id", "y" * MAX_EVENT_ID_LENGTH),
    ]
    result = _deliver(emulator, rows, tmp_path)
    outcomes = {o["row_key"]: o for o in pq.read_table(result.outcomes_path).to_pylist()}
    assert outcomes["huge-quantity"]["reason"] == "number_out_of_range"
    assert outcomes["huge-value-1"]["reason"] == "number_out_of_range"
    assert outcomes["huge-value-2"]["reason"] == "number_out_of_range"
    assert outcomes["inf-price"]["reason"] == "number_out_of_range"
    assert outcomes["long-id"]["reason"] == "event_id_too_long"
    for key in ("good", "no-currency", "blank-currency", "max-id"):
        assert outcomes[key]["outcome"] == "sent", outcomes[key]

    received = {e["event_id"]: e for e in emulator.admin.events(emulator.seed.event_set_id)}
    assert set(received) == {"e-good", "e-no-currency", "e-blank-currency", "y" * MAX_EVENT_ID_LENGTH}
    assert received["e-good"]["properties"]["currency"] == "USD"
    assert "currency" not in received["e-no-currency"]["properties"]
    assert "currency" not in received["e-blank-currency"]["properties"]
    assert result.totals.rejected == {"number_out_of_range": 3, "event_id_too_long": 1}
