"""The one backoff schedule of the audience tasks' poll loops (`ttsync.sync.polling`)."""

from __future__ import annotations

import asyncio

from ttsync.sync.polling import Backoff


def test_backoff_expires_at_its_deadline_and_caps_the_wait() -> None:
    assert Backoff(timeout_seconds=0.0, poll_seconds=5.0).expired
    backoff = Backoff(timeout_seconds=60.0, poll_seconds=0.02)
    assert not backoff.expired

    async def three_waits() -> None:
        for _ in range(3):
            await backoff.wait()

    asyncio.run(three_waits())  # 0.02 s each: the first delay is min(poll, 0.25), doubling stays at poll
    assert not backoff.expired
