"""Crash safety: a delivery process killed mid-run, then re-run, counts every event exactly once.

A real `python` subprocess delivers to the emulator (with injected latency, 50000 faults and dropped
connections so that the run is slow and retried); the test kills it with SIGKILL once the ledger shows some
confirmed batches, re-runs it to completion, and checks through the emulator's admin API that each event_id
was accepted exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.ledger import Ledger

EVENTS = 3_000
DRIVER = r"""
import asyncio, json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from ttsync.destinations.tiktok.events import deliver_events
from ttsync.events.ledger import Ledger
from ttsync.destinations.tiktok.client import AsyncTikTokClient, RetryPolicy
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings

cfg = json.loads(sys.argv[1])
base = datetime.now(UTC) - timedelta(days=2)


def batches():
    for start in range(0, cfg["events"], 1_000):
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "row_key": f"r{i}",
                    "email": f"user{i}@example.com",
                    "event": "CompletePayment",
                    "event_id": f"order-{i}",
                    "timestamp": (base + timedelta(seconds=i)).isoformat(),
                    "value": 1.0,
                    "currency": "EUR",
                }
                for i in range(start, min(start + 1_000, cfg["events"]))
            ]
        )


async def main() -> None:
    settings = ResolvedOfflineEventsSettings(advertiser_id=cfg["advertiser_id"], event_set_id=cfg["event_set_id"])
    retry = RetryPolicy(max_attempts=8, wait_initial=0.01, wait_max=0.1, wait_jitter=0.0)
    async with AsyncTikTokClient(access_token=cfg["token"], base_url=cfg["base_url"], retry=retry) as client:
        with Ledger.open(Path(cfg["state"])) as ledger:
            result = await deliver_events(
                client, batches(), settings=settings, key_column="row_key", run_dir=Path(cfg["run_dir"]),
                ledger=ledger, batch_size=cfg["batch_size"], max_in_flight=4,
            )
    print(json.dumps(result.totals.to_dict()))


asyncio.run(main())
"""


def _driver(tmp_path: Path, emu: EmulatorServer, run: str) -> list[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cfg = {
        "events": EVENTS,
        "batch_size": 50,
        "advertiser_id": emu.seed.advertiser_ids[0],
        "event_set_id": emu.seed.event_set_id,
        "token": emu.seed.operator_token,
        "base_url": emu.base_url,
        "state": str(tmp_path / "state"),
        "run_dir": str(tmp_path / run),
    }
    return [sys.executable, str(script), json.dumps(cfg)]


def _ledger_count(tmp_path: Path) -> int:
    if not (tmp_path / "state" / "ledger" / "events.sqlite").exists():
        return 0
    with Ledger.open(tmp_path / "state") as ledger:
        return ledger.count()


def test_killed_delivery_then_rerun_counts_each_event_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    emulator.admin.set_faults(
        rate=0.1, codes=[50000], latency_ms=40, drop_rate=0.05, seed=7, paths=["event/track/"]
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        _driver(tmp_path, emulator, "run1"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    try:
        while _ledger_count(tmp_path) < 500 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the delivery ended before it could be killed: make it slower"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate(timeout=30)
    recorded_at_kill = _ledger_count(tmp_path)
    assert 0 < recorded_at_kill < EVENTS

    second = subprocess.run(
        _driver(tmp_path, emulator, "run2"), env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert second.returncode == 0, second.stderr[-2000:]
    totals = json.loads(second.stdout.strip().splitlines()[-1])
    assert totals["duplicate_skipped"] == recorded_at_kill
    assert totals["sent"] == EVENTS - recorded_at_kill

    accepted = Counter(e["event_id"] for e in emulator.admin.events(emulator.seed.event_set_id))
    assert set(accepted) == {f"order-{i}" for i in range(EVENTS)}
    assert set(accepted.values()) == {1}
    stats = emulator.admin.state()["events"]
    assert stats["accepted"] == EVENTS
    # Whatever was re-sent (in flight at the kill, or retried after a dropped connection) was de-duplicated.
    assert stats["received"] == stats["accepted"] + stats["deduplicated"]
    assert _ledger_count(tmp_path) == EVENTS
