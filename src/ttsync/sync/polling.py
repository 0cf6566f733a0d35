"""Waiting for a destination to catch up: one backoff schedule for every poll loop of a run.

The first wait is short (a quick answer is common against the emulator and small audiences), then each wait
doubles up to `poll_seconds`; `expired` turns true at `timeout_seconds` after the start.
"""

from __future__ import annotations

import asyncio
import time


class Backoff:
    """The waits between polls of one thing, and the deadline after which the caller gives up."""

    def __init__(self, *, timeout_seconds: float, poll_seconds: float) -> None:
        self._deadline = time.monotonic() + timeout_seconds
        self._poll = poll_seconds
        self._delay = min(poll_seconds, 0.25)

    @property
    def expired(self) -> bool:
        """True once `timeout_seconds` have passed since the backoff was made."""
        return time.monotonic() >= self._deadline

    async def wait(self) -> None:
        """Sleep the next delay (0.25 s, then doubling, at most `poll_seconds`)."""
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, self._poll)
