"""Client-side rate limiting: an adaptive GCRA pacer per (app_id, group), shared process-wide.

Why GCRA with burst 1: TikTok counts requests per second, per minute and per day in windows (ref §5.2).
A token bucket with a large burst would send a volley that trips a one-second window; spacing requests
evenly at `1 / rate` keeps every window under the limit. A small `headroom` (default 3 %) below the
configured QPS absorbs network jitter, which can bunch two evenly sent requests together on arrival.
Slots are reserved GCRA-style (so waiters sleep until their turn instead of polling), and each send is then
*claimed* against a sliding one-second window that mirrors TikTok's count (see `try_claim`). Without the
claim, callers that reserved before a slow-down would keep the old pace, and a caller that woke late (an
event loop busy preparing the next batches) could be followed by the whole backlog at once.

Why adaptive: the configured QPS can be wrong (another process shares the app, a lower tier, the sandbox's
1 QPS). On a rate-limit answer the limiter slows down (multiplicative decrease, at most once per second so a
volley of in-flight 40100s counts as one signal): by 10 % for a lone answer after a calm period (most likely
arrival jitter), by half with a one-second pause when they repeat ("over the per-second limit, retry in the
next second", ref §5.2). It then recovers additively, by a fraction of the configured rate per second, back
up to the configured rate.

Why thread-safe rather than asyncio-locked: the sync facade runs its own event loop in a thread, and several
clients of one app may live on different loops. The critical section is a few float operations under a
`threading.Lock`; the waiting itself is an `asyncio.sleep` on the caller's own loop.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Group = Literal["default", "segment", "events"]

# ref §5.2: Basic tier app-wide 10 QPS; "Streaming API" (segment) 10,000 QPS; event/track 1,000 QPS.
DEFAULT_QPS: Final[dict[str, float]] = {"default": 10.0, "segment": 10_000.0, "events": 1_000.0}

# ref §5.2: limits are counted per second. The client's window is a little longer, so that its count also
# holds on arrival when requests are shifted by up to WINDOW_MARGIN of network jitter. With the default 3 %
# headroom, (1 + WINDOW_MARGIN) * (1 - headroom) < 1, so even pacing never trips the client's own window.
WINDOW_MARGIN: Final = 0.02
WINDOW: Final = 1.0 + WINDOW_MARGIN

# How many recent answers `answered` takes the server's quickest write-to-answer time from (at 50 QPS, the
# last second or so: long enough to hold an unqueued answer, short enough to follow a change of body size).
LATENCY_SAMPLES: Final = 64

# Paths per group; everything else is "default" (contracts).
_SEGMENT_PATHS: Final = frozenset({"segment/audience/", "segment/mapping/"})
_EVENT_PATHS: Final = frozenset({"event/track/"})


def group_for_path(path: str) -> Group:
    """The rate-limit group a v1.3 path (e.g. ``segment/mapping/``) belongs to."""
    if path in _SEGMENT_PATHS:
        return "segment"
    if path in _EVENT_PATHS:
        return "events"
    return "default"


class RateLimits(BaseModel):
    """Configured requests per second per group, and how the limiter adapts."""

    model_config = ConfigDict(frozen=True)

    default: float = Field(default=DEFAULT_QPS["default"], gt=0)
    segment: float = Field(default=DEFAULT_QPS["segment"], gt=0)
    events: float = Field(default=DEFAULT_QPS["events"], gt=0)
    headroom: float = Field(default=0.03, ge=0, lt=0.5, description="Fraction kept below the configured QPS.")
    decrease_factor: float = Field(
        default=0.5, gt=0, lt=1, description="Rate multiplier when rate-limit answers repeat."
    )
    mild_decrease_factor: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Rate multiplier on a lone rate-limit answer after a calm period.",
    )
    calm_seconds: float = Field(
        default=10.0, ge=0, description="Seconds without a decrease after which an answer counts as lone."
    )
    recovery_per_second: float = Field(
        default=0.05, gt=0, description="Additive recovery per second, as a fraction of the configured rate."
    )
    min_qps: float = Field(default=0.2, gt=0, description="The rate never drops below this.")

    def qps_for(self, group: Group) -> float:
        """Configured QPS for `group`."""
        value: float = getattr(self, group)
        return value


@dataclass
class LimiterStats:
    """Counters for tests, benchmarks and progress displays."""

    acquired: int = 0
    refused: int = 0  # claims the trailing-window check turned back (a waiting caller may count twice)
    restamped: int = 0  # sends counted from a late arrival rather than their claim (see `answered`)
    rate_limited: int = 0
    decreases: int = 0
    waited_seconds: float = 0.0


class AdaptiveRateLimiter:
    """Paces callers evenly at an adaptive rate; shared by every client of one (app, group)."""

    def __init__(self, config: RateLimits, group: Group, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.group = group
        self.stats = LimiterStats()
        self._configure_locked(config)
        self._rate = self._ceiling
        self._tat = 0.0  # theoretical arrival time of the next free slot (GCRA)
        self._sent: deque[float] = deque()  # times of the sends claimed within the last WINDOW
        self._latencies: dict[str, deque[float]] = {}  # write-to-answer of recent sends, per endpoint
        self._not_before = 0.0  # no send before this time (set by a rate-limit answer)
        self._last_update = clock()
        self._last_decrease = float("-inf")

    def _configure_locked(self, config: RateLimits) -> None:
        self._config = config
        self._ceiling = config.qps_for(self.group) * (1.0 - config.headroom)
        self._min_rate = min(config.min_qps, self._ceiling)

    def configure(self, config: RateLimits) -> None:
        """Apply a new configuration (the last client constructed for an app wins)."""
        with self._lock:
            self._configure_locked(config)
            self._rate = min(self._rate, self._ceiling)

    @property
    def ceiling_qps(self) -> float:
        """The highest rate this limiter paces at (configured QPS minus headroom)."""
        return self._ceiling

    @property
    def current_qps(self) -> float:
        """The rate in force now, after adaptive decreases and recovery."""
        with self._lock:
            self._recover_locked(self._clock())
            return self._rate

    def _recover_locked(self, now: float) -> None:
        elapsed = now - self._last_update
        self._last_update = now
        if elapsed > 0 and self._rate < self._ceiling:
            step = self._config.recovery_per_second * self._ceiling * elapsed
            self._rate = min(self._ceiling, self._rate + step)

    def reserve(self) -> float:
        """Take the next slot in line; return how many seconds the caller should sleep before claiming it."""
        with self._lock:
            now = self._clock()
            self._recover_locked(now)
            start = max(self._tat, now, self._not_before)
            self._tat = start + 1.0 / self._rate
            self.stats.acquired += 1
            return start - now

    def try_claim(self) -> float:
        """Claim the right to send now; return 0.0 on success, else the seconds to wait before trying again.

        The reservation paces callers evenly. This check is the authority, and it mirrors what TikTok
        counts (ref §5.2): at most `int(rate * WINDOW) + 1` sends in any trailing `WINDOW` seconds, at the
        rate in force now. `WINDOW` is one second plus `WINDOW_MARGIN`, so the limit also holds on arrival
        when network jitter shifts requests by up to that margin; with the default 3 % headroom, evenly
        paced sends never hit this check. It matters in two cases: a caller that reserved before a
        slow-down must obey the new rate, and callers that woke late (a busy event loop) may catch up only
        as far as the window allows. A refused caller waits only until the window frees and keeps its slot
        (a send that went out or was counted late costs milliseconds, not an interval of pacing for every
        caller after it); only after a slow-down, while the rate is below its ceiling or a rate-limit
        answer holds sends back, does a refused caller take a fresh slot at the back of the line, at the
        new rate.
        """
        return self._claim()[0]

    def _claim(self) -> tuple[float, float]:
        """`try_claim`, also returning the time the successful claim was counted at (for `answered`)."""
        with self._lock:
            now = self._clock()
            self._recover_locked(now)
            sent = self._sent
            while sent and sent[0] <= now - WINDOW:
                sent.popleft()
            cap = int(self._rate * WINDOW) + 1
            if now >= self._not_before and len(sent) < cap:
                sent.append(now)
                return 0.0, now
            self.stats.refused += 1
            free_at = sent[len(sent) - cap] + WINDOW if len(sent) >= cap else now
            if now >= self._not_before and (free_at - now <= 1.0 / self._rate or self._rate >= self._ceiling):
                # An earlier send went out or was counted late (its caller woke late; `answered` moved it to
                # its late arrival): wait until the window frees and keep this slot. A fresh slot at the back
                # would push every later send back by an interval: at 50 QPS with 1 MB uploads, that cost
                # 3 % of the rate (34 refusals in 1,000 sends). Only after a slow-down (the rate below its
                # ceiling) do refused callers, which reserved at the old rate, take new slots at the new one.
                return free_at - now, now
            start = max(self._tat, free_at, self._not_before)
            self._tat = start + 1.0 / self._rate
            return start - now, now

    async def acquire(self) -> float:
        """Wait until this caller may send (reserve a slot, sleep, then claim it); return the claim's time.

        Pass that time to `answered` when the answer arrives.
        """
        started = self._clock()
        wait = self.reserve()
        while True:
            if wait > 0:
                await asyncio.sleep(wait)
            wait, claimed_at = self._claim()
            if wait <= 0:
                break
        self.stats.waited_seconds += self._clock() - started
        return claimed_at

    def now(self) -> float:
        """The limiter's clock (the time base of `acquire`'s claims and of `answered`'s `sent_at`)."""
        return self._clock()

    def answered(self, claimed_at: float, sent_at: float | None = None, endpoint: str = "") -> None:
        """Record that the send claimed at `claimed_at` has its answer (any answer: it reached the server).

        The window counts a send from its claim, but the server counts it when it arrives, which can be
        later: the process can stall between the claim and the write (a busy machine deschedules it; a
        garbage collection pauses it), and the request can wait before the server gets to it (a slow
        network, a busy server). It then reaches the server late, right before the sends the window let go
        meanwhile, and the server counts them all in one second. So when the send may have arrived more
        than WINDOW_MARGIN after its claim, it is counted from the latest time it may have arrived instead:

        - `sent_at` is when the transport finished writing the request (on this limiter's clock, see
          `now`): the request arrived after it;
        - it arrived before its answer, by at least the time the server needs to read and answer a request
          to that `endpoint` (the API path), which the quickest of its recent answers (from write to answer)
          shows: a send answered as quickly arrived right after its write; one answered 80 ms slower than
          that may have waited 80 ms to be counted. (Per endpoint: a 1 MB upload takes the server longer
          than a small create does.)

        Without `sent_at`, the answer's time is the latest the send can have arrived. A send written on time
        and answered about as quickly as the others, the usual case, changes nothing: the margin covers
        that much shift. (Counting every 1 MB upload from its answer kept each one in the window for its
        whole round trip and turned back sends the server would accept.)
        """
        with self._lock:
            now = self._clock()
            if sent_at is None:
                arrived_by = now
            else:
                sent_at = min(sent_at, now)
                latencies = self._latencies.get(endpoint)
                if latencies is None:
                    latencies = self._latencies[endpoint] = deque(maxlen=LATENCY_SAMPLES)
                latencies.append(now - sent_at)
                arrived_by = max(sent_at, now - min(latencies))
            if arrived_by - claimed_at <= WINDOW_MARGIN:
                return
            sent = self._sent
            index = bisect.bisect_left(sent, claimed_at)
            if index < len(sent) and sent[index] == claimed_at:
                del sent[index]
            bisect.insort(sent, arrived_by)
            self.stats.restamped += 1

    def on_rate_limited(self) -> None:
        """Record a rate-limit answer and slow down (at most one decrease per second).

        A lone answer after a calm period is most likely arrival jitter at the configured rate: the rate
        drops by `mild_decrease_factor` only. Another one within `calm_seconds` means the real limit is
        lower: the rate is multiplied by `decrease_factor` and nothing is sent for a second (ref §5.2: over
        the per-second limit, retry in the next second).
        """
        with self._lock:
            now = self._clock()
            self._recover_locked(now)
            self.stats.rate_limited += 1
            if now - self._last_decrease < 1.0:
                return  # in-flight requests of the same burst: one signal, not several
            calm = now - self._last_decrease >= self._config.calm_seconds
            self._last_decrease = now
            self.stats.decreases += 1
            factor = self._config.mild_decrease_factor if calm else self._config.decrease_factor
            self._rate = max(self._min_rate, self._rate * factor)
            if not calm:
                self._not_before = max(self._not_before, now + 1.0)
            self._tat = max(self._tat, self._not_before, now + 1.0 / self._rate)

    def __repr__(self) -> str:
        return f"AdaptiveRateLimiter(group={self.group!r}, ceiling_qps={self._ceiling:.3g}, qps={self._rate:.3g})"


class LimiterRegistry:
    """Limiters keyed by (scope, app_id, group). One process-wide instance is the default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[tuple[str, str, Group], AdaptiveRateLimiter] = {}
        # (scope, app_id) -> rows per segment/mapping/ request the server accepted after refusing more
        # (TikTok documents no maximum, ref §2.1): learned once, then every client of the app sends that size.
        self.mapping_row_limits: dict[tuple[str, str], int] = {}

    def get(self, scope: str, app_id: str, group: Group, config: RateLimits) -> AdaptiveRateLimiter:
        """The limiter for this app and group; created on first use, reconfigured if `config` changed.

        `scope` separates API hosts (production vs the sandbox emulator): their limits are independent.
        """
        key = (scope, app_id, group)
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = AdaptiveRateLimiter(config, group)
                self._limiters[key] = limiter
                return limiter
        if limiter._config != config:
            limiter.configure(config)
        return limiter

    def limiters(self, group: Group) -> list[AdaptiveRateLimiter]:
        """Every limiter of `group` made so far (for benchmarks and progress displays to read their stats)."""
        with self._lock:
            return [limiter for (_, _, g), limiter in self._limiters.items() if g == group]


GLOBAL_LIMITERS: Final = LimiterRegistry()
