"""The adaptive limiter's arithmetic, driven by an injected clock (no sleeping, no network).

The clock is a plain counter, not a mock: the limiter takes `clock` as a constructor parameter precisely so
its pacing can be checked exactly. Real-time behaviour against the emulator is in test_tiktok_ratelimit.py.
"""

from __future__ import annotations

import pytest

from ttsync.destinations.tiktok.client import LimiterRegistry, RateLimits, group_for_path
from ttsync.destinations.tiktok.client.limiter import AdaptiveRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(qps: float = 10.0, **kw: float) -> tuple[AdaptiveRateLimiter, Clock]:
    clock = Clock()
    config = RateLimits(default=qps, headroom=0.0, **kw)
    return AdaptiveRateLimiter(config, "default", clock=clock), clock


def test_paces_evenly_with_burst_one() -> None:
    limiter, _ = make(10.0)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_even_pacing_never_hits_the_window_check() -> None:
    limiter = AdaptiveRateLimiter(RateLimits(default=10.0), "default", clock=(clock := Clock()))
    for _ in range(100):
        clock.now += limiter.reserve()
        assert limiter.try_claim() == 0.0


def test_late_callers_catch_up_only_as_far_as_the_window_allows() -> None:
    limiter, clock = make(10.0)  # no headroom: 10 per second, window 1.02 s -> at most 11 sends in it
    for _ in range(30):
        limiter.reserve()
    clock.now += 2.0  # the loop was stalled: 30 callers are all late
    claimed = sum(1 for _ in range(30) if limiter.try_claim() == 0.0)
    assert claimed == 11
    clock.now += 0.5  # still inside the window of the burst: nothing more
    assert limiter.try_claim() > 0.0
    clock.now += 0.6
    assert limiter.try_claim() == 0.0


def test_slow_down_applies_to_callers_who_reserved_earlier() -> None:
    limiter, clock = make(10.0, mild_decrease_factor=0.5, recovery_per_second=1e-9)  # no recovery here
    start = clock.now
    slots = [limiter.reserve() for _ in range(20)]  # reserved at 10 QPS: one every 0.1 s
    limiter.on_rate_limited()  # 10 -> 5 QPS
    claimed: list[float] = []
    for offset in slots:
        clock.now = start + offset
        if limiter.try_claim() == 0.0:
            claimed.append(clock.now)
    # Whatever they reserved, in any trailing 1.02 s window at most int(5 * 1.02) + 1 = 6 were sent.
    for t in claimed:
        assert sum(1 for u in claimed if t - 1.02 < u <= t) <= 6
    assert len(claimed) < len(slots)


def test_idle_time_does_not_bank_a_burst() -> None:
    limiter, clock = make(10.0)
    limiter.reserve()
    clock.now += 60.0  # a long pause must not allow a volley afterwards
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.1)


def test_headroom_keeps_rate_below_configured() -> None:
    limiter = AdaptiveRateLimiter(RateLimits(default=10.0, headroom=0.05), "default", clock=Clock())
    assert limiter.ceiling_qps == pytest.approx(9.5)


def test_lone_rate_limit_is_mild_repeated_ones_halve_and_pause() -> None:
    limiter, clock = make(10.0)
    limiter.on_rate_limited()
    limiter.on_rate_limited()  # same second: one signal, one decrease
    assert limiter.current_qps == pytest.approx(9.0)  # calm before: jitter, -10 %
    assert limiter.stats.decreases == 1
    assert limiter.stats.rate_limited == 2
    assert limiter.reserve() == pytest.approx(1 / 9.0)  # no pause for a lone answer
    clock.now += 1.0  # recovered 5 % of 10 QPS meanwhile: 9.5, then halved
    limiter.on_rate_limited()
    assert limiter.current_qps == pytest.approx(4.75)
    assert limiter.try_claim() >= 1.0  # "retry in the next second" (ref §5.2)


def test_recovers_additively_to_the_ceiling() -> None:
    limiter, clock = make(10.0, recovery_per_second=0.1, mild_decrease_factor=0.5)
    limiter.on_rate_limited()
    assert limiter.current_qps == pytest.approx(5.0)
    clock.now += 2.0  # +10 % of 10 QPS per second
    assert limiter.current_qps == pytest.approx(7.0)
    clock.now += 100.0
    assert limiter.current_qps == pytest.approx(10.0)
    assert limiter.stats.decreases == 1


def test_never_below_min_qps() -> None:
    limiter, clock = make(10.0, min_qps=1.0)
    for _ in range(20):
        limiter.on_rate_limited()
        clock.now += 1.0
    assert limiter.current_qps >= 1.0


def test_registry_shares_per_scope_app_group() -> None:
    registry = LimiterRegistry()
    config = RateLimits()
    a = registry.get("http://h/", "app1", "segment", config)
    assert registry.get("http://h/", "app1", "segment", config) is a
    assert registry.get("http://h/", "app2", "segment", config) is not a
    assert registry.get("http://h/", "app1", "default", config) is not a
    assert registry.get("http://other/", "app1", "segment", config) is not a
    # Reconfiguring applies to the shared instance.
    registry.get("http://h/", "app1", "segment", RateLimits(segment=50.0, headroom=0.0))
    assert a.ceiling_qps == pytest.approx(50.0)
    # Every limiter of a group, whichever scope and app (the benches sum their stats).
    assert {id(lim) for lim in registry.limiters("segment")} == {
        id(registry.get(scope, app, "segment", config))
        for scope, app in (("http://h/", "app1"), ("http://h/", "app2"), ("http://other/", "app1"))
    }
    assert registry.limiters("events") == []


def test_groups_match_contract() -> None:
    assert group_for_path("segment/mapping/") == "segment"
    assert group_for_path("segment/audience/") == "segment"
    assert group_for_path("event/track/") == "events"
    assert group_for_path("dmp/custom_audience/list/") == "default"
    defaults = RateLimits()
    assert (defaults.default, defaults.segment, defaults.events) == (10.0, 10_000.0, 1_000.0)


def test_a_late_send_costs_milliseconds_not_a_slot() -> None:
    """At 9.7 QPS (3 % headroom) a send that went out 15 ms late makes the send ten slots later wait until
    the window frees, a few milliseconds; the pacing after it stays on its grid."""
    limiter = AdaptiveRateLimiter(RateLimits(default=10.0), "default", clock=(clock := Clock()))
    start = clock.now
    slots = [start + limiter.reserve() for _ in range(30)]  # 30 callers take their turns up front
    waits = []
    for i, slot in enumerate(slots):
        clock.now = slot + (0.015 if i == 0 else 0.0)  # the first caller wakes 15 ms late
        wait = limiter.try_claim()
        waits.append(wait)
        if wait:
            clock.now += wait
            assert limiter.try_claim() == 0.0
    assert [i for i, w in enumerate(waits) if w] == [10]
    assert waits[10] == pytest.approx(0.015 + 1.02 - 10 / 9.7)
    assert clock.now == pytest.approx(start + 29 / 9.7)  # the last send on its slot: no interval lost
    assert limiter.stats.refused == 1


def test_a_refused_claim_at_the_ceiling_waits_for_the_window_and_keeps_the_pacing() -> None:
    """Sends counted late (answered in a bunch, moved to their late arrival) can fill the window: a claim
    refused then waits until the window frees, without pushing the pacing of every later caller back by an
    interval (at 50 QPS with 1 MB uploads that cost 3 % of the rate)."""
    limiter, clock = make(10.0)  # no headroom: 11 sends in any 1.02 s
    for i in range(11):  # eleven sends counted within 0.1 s
        clock.now = 100.0 + i / 100
        assert limiter.try_claim() == 0.0
    clock.now = 100.5
    assert limiter.try_claim() == pytest.approx(0.52)  # until the send counted at 100.0 leaves the window
    assert limiter.reserve() == 0.0  # the next caller's turn is still now: no slot was taken
    clock.now = 101.02
    assert limiter.try_claim() == 0.0


def _sends_then_claim_at(
    answer_at: float,
    sent_at: float | None = None,
    claim_at: float = 101.05,
    sends: int = 11,
    quickest: float | None = None,
    quickest_on: str = "segment/mapping/",
) -> float:
    """At 10 QPS (no headroom: 11 sends in any 1.02 s), the send claimed at 100.0 is answered at
    `answer_at` (written at `sent_at`, when the transport saw it); `sends - 1` more go out every 100 ms;
    return what a claim at `claim_at` is told to wait. With `quickest`, an earlier send (long out of the
    window) was answered that many seconds after its write, on the endpoint `quickest_on` (the send claimed
    at 100.0 is a `segment/mapping/` one)."""
    limiter, clock = make(10.0)
    if quickest is not None:
        clock.now = 98.0
        assert limiter.try_claim() == 0.0
        clock.now += quickest
        limiter.answered(98.0, 98.0, quickest_on)
    claims = [100.0 + i / 10 for i in range(sends)]
    unanswered = True
    for claim in [*claims, claim_at]:
        if unanswered and answer_at <= claim:
            clock.now, unanswered = answer_at, False
            limiter.answered(claims[0], sent_at, "segment/mapping/")
        if claim == claim_at:
            break
        clock.now = claim
        assert limiter.try_claim() == 0.0
    clock.now = claim_at
    return limiter.try_claim()


def test_a_send_answered_late_is_counted_from_its_answer() -> None:
    """A process stalled between a claim and its write sends late, right before the backlog: counted from
    its answer (200 ms later), the window holds 11 sends at 101.05: that claim waits until the one at 100.1
    leaves it (claim times alone would have let it go, and the server would count 11 in its second)."""
    assert _sends_then_claim_at(answer_at=100.2) == pytest.approx(100.1 + 1.02 - 101.05)


def test_an_answer_within_the_margin_changes_nothing() -> None:
    assert _sends_then_claim_at(answer_at=100.015) == 0.0


def test_a_send_answered_as_quickly_as_the_others_is_counted_from_its_claim() -> None:
    """A 1 MB upload written 5 ms after its claim and answered 300 ms later, as quickly as the server answers
    such uploads (its reading and handling), arrived on time: counting it from its answer would keep it in
    the window 0.3 s too long and turn back sends the server would accept (at 50 QPS, counting every upload
    from its answer held the rate to 0.94 of the ceiling)."""
    assert _sends_then_claim_at(answer_at=100.3, sent_at=100.005, quickest=0.3) == 0.0


def test_a_send_answered_slower_than_the_quickest_may_have_arrived_late() -> None:
    """Written on time but answered 200 ms slower than the quickest recent answer (10 ms), the send may have
    waited 200 ms before the server counted it (a busy server, a slow network): it counts from its answer
    less those 10 ms, and the claim at 101.05 waits as for a send written 200 ms late."""
    wait = _sends_then_claim_at(answer_at=100.21, sent_at=100.005, quickest=0.01)
    assert wait == pytest.approx(100.1 + 1.02 - 101.05)
    # The quickest answer of another endpoint (a small create) says nothing of how long an upload takes.
    assert _sends_then_claim_at(answer_at=100.21, sent_at=100.005, quickest=0.01, quickest_on="other/") == 0.0


def test_a_send_written_late_is_counted_from_its_write_not_its_answer() -> None:
    """Written 200 ms after its claim (a stall before the write), the send counts from its write: at 101.05
    the window is full (as with the answer-time stamp), but at 101.25, after two more sends, the write has
    left it, though the answer (at 101.22, after a slow server) has not."""
    assert _sends_then_claim_at(answer_at=100.3, sent_at=100.2) == pytest.approx(100.1 + 1.02 - 101.05)
    assert _sends_then_claim_at(answer_at=101.22, sent_at=100.2, claim_at=101.25, sends=13) == 0.0
    # Without the write's time the answer is the latest the send can have gone out: still in the window.
    assert _sends_then_claim_at(answer_at=101.22, claim_at=101.25, sends=13) > 0.0
