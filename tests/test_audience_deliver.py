"""Partner delivery against the emulator: checkpoints are stored in order, off the event loop; a failed store
write stops the sending as a failed request does; a delivery sent again goes on from its checkpoint; requests
are in flight up to the bound."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from test_audiences_plan import E, h, run_plan
from ttsync.destinations.tiktok.audience.deliver import (
    MAX_IN_FLIGHT,
    DeliveryCounts,
    MappingCheckpoint,
    PartnerDelivery,
    in_flight_for,
)
from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RateLimits
from ttsync.destinations.tiktok.client.errors import RetryableError, from_envelope
from ttsync.emulator.embedded import EmulatorServer
from ttsync.sync.plan import SyncMode

Send = Callable[..., Coroutine[Any, Any, None]]


def deliver(
    emulator: EmulatorServer,
    tmp_path: Path,
    save: object,
    people: int = 40,
    *,
    in_flight: int = 2,
    wrap: Callable[[Send], Send] = lambda send: send,
    attempts: int = 1,
) -> tuple[str, list[DeliveryCounts]]:
    """Deliver `people` emails in batches of 4 through `wrap(send)`; `send_all` up to `attempts` times on one
    delivery while it fails (as `deliver_until_ready` does). Returns the audience id and each attempt's counts."""
    con, plan = run_plan(
        tmp_path, [(f"{i:03d}", E, h(i)) for i in range(1, people + 1)], None, SyncMode.MIRROR, (E,)
    )
    seed = emulator.seed
    adv = seed.advertiser_ids[0]
    client = AsyncTikTokClient(
        access_token=seed.operator_token,
        app_id=seed.app_id,
        base_url=emulator.base_url,
        limiters=LimiterRegistry(),
        rate_limits=RateLimits(segment=1_000.0),
    )

    async def go() -> tuple[str, list[DeliveryCounts]]:
        async with client:
            audience_id = (await client.create_segment_audience(adv, "Deliver")).audience_id
            emulator.admin.advance_clock(3 * 3600)  # past the new audience's processing delay

            async def send(
                *, action: str, advertiser_ids: object, id_schema: object, batch_data_json: bytes
            ) -> None:
                await client.segment_mapping_json(
                    action="add" if action == "add" else "delete",
                    advertiser_ids=[adv],
                    id_schema=["EMAIL_SHA256"],
                    batch_data_json=batch_data_json,
                )

            checkpoint = MappingCheckpoint(audience_id=audience_id, batch_rows=4)
            counts: list[DeliveryCounts] = []
            with PartnerDelivery(con, plan, checkpoint, in_flight=in_flight) as delivery:
                for attempt in range(attempts):
                    try:
                        counts.append(
                            await delivery.send_all(
                                send=wrap(send),
                                advertiser_ids=[adv],
                                save_checkpoint=save,  # type: ignore[arg-type]
                            )
                        )
                        break
                    except RetryableError:
                        if attempt == attempts - 1:
                            raise
            return audience_id, counts

    return asyncio.run(go())


def test_every_confirmed_batch_is_stored_in_order_off_the_loop(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    saved: list[tuple[int, str]] = []

    def save(checkpoint: MappingCheckpoint) -> None:
        saved.append((len(checkpoint.added), threading.current_thread().name))

    audience_id, _ = deliver(emulator, tmp_path, save)
    assert len(emulator.admin.audience_members(audience_id)[E]) == 40
    # 10 add batches: one write each (the empty remove phase is skipped); the counts only grow (in order).
    assert len(saved) == 10
    assert [n for n, _ in saved] == sorted(n for n, _ in saved)
    assert saved[-1][0] == 10
    assert all(name.startswith("ttsync-checkpoint") for _, name in saved)


def test_a_failed_store_write_stops_the_sending(emulator: EmulatorServer, tmp_path: Path) -> None:
    writes: list[int] = []

    def save(checkpoint: MappingCheckpoint) -> None:
        writes.append(len(checkpoint.added))
        if len(writes) == 3:  # the closing write of the remove phase, then two add batches
            raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        deliver(emulator, tmp_path, save, people=200)
    # Stopped long before the 50 batches of the plan: at most what was in flight when the write failed.
    assert len(writes) < 10


def test_a_delivery_sent_again_after_a_failure_skips_what_tiktok_confirmed(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    calls = 0

    def failing_once(send: Send) -> Send:
        async def wrapped(**kwargs: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 4:  # as a new audience answers "not ready" (ref §7); the delivery goes on from there
                # (The emulator fails requests by chance or all of them, never exactly the fourth: a wrapper.)
                raise from_envelope(40201, "Task is not ready", endpoint="segment/mapping/", request_id=None)
            await send(**kwargs)

        return wrapped

    saved: list[int] = []
    audience_id, counts = deliver(
        emulator, tmp_path, lambda cp: saved.append(len(cp.added)), in_flight=1, wrap=failing_once, attempts=2
    )
    assert len(emulator.admin.audience_members(audience_id)[E]) == 40
    # One batch in flight at a time: the first attempt confirmed 3 of the 10 batches, the second the other 7.
    assert [(c.requests, c.batches_skipped) for c in counts] == [(7, 3)]
    assert saved[-1] == 10


def test_up_to_in_flight_requests_are_sent_at_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    waiting = 0
    most = 0
    opened = asyncio.Event()

    def gated(send: Send) -> Send:
        async def wrapped(**kwargs: Any) -> None:
            nonlocal waiting, most
            waiting += 1
            most = max(most, waiting)
            if waiting == 3:  # the whole in-flight window holds requests: let them through
                opened.set()
            await asyncio.wait_for(opened.wait(), timeout=30)
            waiting -= 1
            await send(**kwargs)

        return wrapped

    audience_id, _ = deliver(emulator, tmp_path, lambda cp: None, in_flight=3, wrap=gated)
    assert most == 3
    assert len(emulator.admin.audience_members(audience_id)[E]) == 40


def test_in_flight_keeps_the_pace_within_bounds() -> None:
    # Half a second of round trip at the configured pace, never fewer than asked nor more than the cap.
    assert in_flight_for(50, 8) == 25
    assert in_flight_for(10, 8) == 8
    assert in_flight_for(10, 12) == 12
    assert in_flight_for(10_000, 8) == MAX_IN_FLIGHT
