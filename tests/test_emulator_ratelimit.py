"""The emulator's per-second window (ref §5.2): what it counts, in pure unit form (no server needed)."""

from __future__ import annotations

import pytest

from ttsync.emulator.errors import ApiError
from ttsync.emulator.ratelimit import Limits, RateLimiter


def test_requests_counted_out_of_arrival_order_expire_on_time() -> None:
    # A request stamped at arrival (0.5) is counted after a later one (1.0) whose body was read first. At 1.49
    # only the 1.0 request is within the last second, so a second request fits under a 2 QPS limit.
    limiter, limits = RateLimiter(), Limits(qps=2, qpm=None, qpd=None)
    limiter.check("app", "segment", limits, 1.0)
    limiter.check("app", "segment", limits, 0.5)
    limiter.check("app", "segment", limits, 1.49)
    with pytest.raises(ApiError) as err:  # ... and the window is still enforced: 1.0 and 1.49 fill it
        limiter.check("app", "segment", limits, 1.5)
    assert err.value.code == 40100
