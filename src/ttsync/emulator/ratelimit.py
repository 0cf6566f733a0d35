"""Per-app, per-group rate limits answered as HTTP 200 + code 40100 (ref §5.2).

QPS uses an exact sliding window over the last second (a log of accepted request times), so a client that
spaces its requests at 1/QPS never trips it. A request is stamped when it arrives but counted once its body
is read, so concurrent requests can be counted out of arrival order: the log is kept sorted (an entry
appended after a later one would outlive its second and be counted against the next). QPM uses 60 one-second buckets; QPD counts per UTC day.
Rejected requests are not counted (otherwise a client that keeps hammering would never get through).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ttsync.emulator.errors import RATE_LIMITED, ApiError

GROUPS: Final = ("default", "segment", "events")

# App-wide tier limits of the `default` group (ref §5.2): (QPS, QPM, QPD).
TIER_LIMITS: Final[dict[str, tuple[int, int, int]]] = {
    "basic": (10, 600, 864_000),
    "advanced": (20, 1_200, 1_728_000),
    "premium": (30, 1_800, 2_592_000),
    "ultimate": (50, 3_000, 4_320_000),
}
# Endpoint-specific limits, the same at every tier (ref §5.2). None means "not documented, not enforced".
GROUP_LIMITS: Final[dict[str, tuple[int, int | None, int | None]]] = {
    "segment": (10_000, None, None),  # the "Streaming API"
    "events": (1_000, 600_000, 86_400_000),
}
SEGMENT_PATHS: Final = frozenset({"segment/audience/", "segment/mapping/"})
EVENT_PATHS: Final = frozenset({"event/track/"})

# Requests arriving within this many seconds of the window edge are not counted against the current window:
# client and server clocks see the same request a few milliseconds apart, and a correctly paced client must
# never be punished for that jitter.
WINDOW_SLACK: Final = 0.02


def group_of(path: str) -> str:
    """Rate-limit group of an API path (relative to /open_api/v1.3/)."""
    if path in SEGMENT_PATHS:
        return "segment"
    if path in EVENT_PATHS:
        return "events"
    return "default"


@dataclass
class Limits:
    qps: int | None
    qpm: int | None
    qpd: int | None


def default_limits(tier: str, group: str) -> Limits:
    """The reference's limits for a tier and group."""
    if group == "default":
        qps, qpm, qpd = TIER_LIMITS.get(tier, TIER_LIMITS["basic"])
        return Limits(qps, qpm, qpd)
    g_qps, g_qpm, g_qpd = GROUP_LIMITS[group]
    return Limits(g_qps, g_qpm, g_qpd)


@dataclass
class _Window:
    second_log: deque[float] = field(default_factory=deque)
    minute_buckets: dict[int, int] = field(default_factory=dict)
    day: int = -1
    day_count: int = 0


class RateLimiter:
    """Counts requests per (app, group) and raises 40100 when a limit would be exceeded."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def reset(self) -> None:
        """Forget all counted requests."""
        self._windows.clear()

    def check(self, app_id: str, group: str, limits: Limits, now: float) -> None:
        """Count one request at ``now`` or raise :class:`ApiError` 40100."""
        w = self._windows.get((app_id, group))
        if w is None:
            w = self._windows[(app_id, group)] = _Window()
        log = w.second_log
        edge = now - 1.0 + WINDOW_SLACK
        while log and log[0] <= edge:
            log.popleft()
        if limits.qps is not None and len(log) >= limits.qps:
            raise ApiError(
                RATE_LIMITED,
                f"App {app_id} reaches the QPS limit {limits.qps}, current QPS is {len(log) + 1}. "
                "Too many requests. Please retry in some time.",
            )
        sec = int(now)
        if limits.qpm is not None:
            buckets = w.minute_buckets
            if len(buckets) > 60:
                for old in [s for s in buckets if s <= sec - 60]:
                    del buckets[old]
            in_minute = sum(n for s, n in buckets.items() if s > sec - 60)
            if in_minute >= limits.qpm:
                raise ApiError(
                    RATE_LIMITED,
                    f"App {app_id} reaches the QPM limit {limits.qpm}. "
                    "Too many requests. Please retry in some time.",
                )
        day = sec // 86_400
        if w.day != day:
            w.day, w.day_count = day, 0
        if limits.qpd is not None and w.day_count >= limits.qpd:
            raise ApiError(
                RATE_LIMITED,
                f"App {app_id} reaches the QPD limit {limits.qpd}. "
                "Too many requests. Please retry after 00:00 UTC.",
            )
        if log and log[-1] > now:
            bisect.insort(log, now)  # counted after a later arrival (its body took longer to read)
        else:
            log.append(now)
        if limits.qpm is not None:
            w.minute_buckets[sec] = w.minute_buckets.get(sec, 0) + 1
        w.day_count += 1
