"""Partner delivery against the emulator: checkpoints are stored in order, off the event loop, and a failed
store write stops the sending as a failed request does."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from test_audiences_plan import E, h, run_plan
from ttsync.destinations.tiktok.audience.deliver import MappingCheckpoint, deliver_partner
from ttsync.destinations.tiktok.client import AsyncTikTokClient, LimiterRegistry, RateLimits
from ttsync.emulator.embedded import EmulatorServer
from ttsync.sync.plan import SyncMode


def deliver(emulator: EmulatorServer, tmp_path: Path, save: object, people: int = 40) -> str:
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

    async def go() -> str:
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

            await deliver_partner(
                con,
                plan,
                send=send,
                advertiser_ids=[adv],
                checkpoint=MappingCheckpoint(audience_id=audience_id, batch_rows=4),
                save_checkpoint=save,  # type: ignore[arg-type]
                in_flight=2,
            )
            return audience_id

    return asyncio.run(go())


def test_every_confirmed_batch_is_stored_in_order_off_the_loop(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    saved: list[tuple[int, str]] = []

    def save(checkpoint: MappingCheckpoint) -> None:
        saved.append((len(checkpoint.added), threading.current_thread().name))

    audience_id = deliver(emulator, tmp_path, save)
    assert len(emulator.admin.audience_members(audience_id)[E]) == 40
    # 10 add batches: one write each, plus one closing each phase; the counts only grow (in order).
    assert len(saved) == 12
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
