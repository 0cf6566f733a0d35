"""The emulator clock: real time plus an offset that the admin API can advance.

Every time-dependent behaviour (token and auth-code expiry, the 48-hour event dedupe window, audience
processing delays, audience expiry, daily rate limits) reads this clock, so tests can jump forward in time
instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Monotonic wall clock with an adjustable offset (seconds)."""

    def __init__(self, offset: float = 0.0) -> None:
        self._wall_at_start = time.time()
        self._mono_at_start = time.monotonic()
        self.offset = offset

    def now(self) -> float:
        """Current emulator time as Unix seconds (never goes backwards unless the offset is lowered)."""
        return self._wall_at_start + (time.monotonic() - self._mono_at_start) + self.offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self.offset += seconds
        return self.now()


def format_time(ts: float) -> str:
    """TikTok's audience time format, ``YYYY-MM-DD HH:MM:SS`` in UTC (ref §2.1)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
