"""Fault injection: deterministic (under a seed) error codes, added latency and dropped connections."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class FaultConfig:
    rate: float = 0.0  # share of requests answered with one of `codes`
    codes: list[int] = field(default_factory=lambda: [50000])
    latency_ms: int = 0
    drop_rate: float = 0.0  # share of requests whose connection is closed without a response
    # Share of requests that are *applied* (an audience created, members added), then answered by closing
    # the connection: the client cannot tell whether TikTok did it (a lost answer, ref §7).
    drop_response_rate: float = 0.0
    seed: int = 0
    paths: list[str] | None = None  # API paths (e.g. "segment/mapping/") the faults apply to; None = all

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the admin API."""
        return {
            "rate": self.rate,
            "codes": self.codes,
            "latency_ms": self.latency_ms,
            "drop_rate": self.drop_rate,
            "drop_response_rate": self.drop_response_rate,
            "seed": self.seed,
            "paths": self.paths,
        }


@dataclass
class FaultDecision:
    action: Literal["none", "drop", "code", "drop_response"]
    code: int = 0
    latency: float = 0.0


NO_FAULT = FaultDecision("none")


class FaultInjector:
    """Decides per request whether to misbehave; same seed + same request order = same decisions."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random(0)
        self.injected = 0
        self.dropped = 0

    def configure(self, config: FaultConfig) -> None:
        """Replace the fault settings and restart the random sequence from the seed."""
        self.config = config
        self._rng = random.Random(config.seed)
        self.injected = 0
        self.dropped = 0

    def clear(self) -> None:
        """No more faults."""
        self.configure(FaultConfig())

    @property
    def active(self) -> bool:
        """Whether any fault is configured (fast path check per request)."""
        c = self.config
        return c.rate > 0 or c.drop_rate > 0 or c.latency_ms > 0 or c.drop_response_rate > 0

    def decide(self, path: str) -> FaultDecision:
        """The fault for one request to ``path`` (relative API path)."""
        c = self.config
        if c.paths is not None and not any(p in path for p in c.paths):
            return NO_FAULT
        # Always draw the same number of values per request, so decisions depend only on request order.
        r_drop, r_code, r_pick = self._rng.random(), self._rng.random(), self._rng.random()
        latency = c.latency_ms / 1000.0
        if r_drop < c.drop_rate:
            self.dropped += 1
            return FaultDecision("drop", latency=latency)
        if r_drop < c.drop_rate + c.drop_response_rate:
            self.dropped += 1
            return FaultDecision("drop_response", latency=latency)
        if r_code < c.rate and c.codes:
            self.injected += 1
            return FaultDecision("code", code=c.codes[int(r_pick * len(c.codes))], latency=latency)
        return FaultDecision("none", latency=latency)
