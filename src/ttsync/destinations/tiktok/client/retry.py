"""Retry policy: two budgets, one for faults and one for rate limits.

Faults (50000, 50002, 40202, HTTP 5xx, timeouts, ...) are retried by stamina with exponential backoff and
jitter, bounded by `max_attempts` and `max_total_seconds`. The final error records how many attempts were
made.

Rate-limit answers (40100, 40016, 40132, 40133, 61000) are *not* faults: the request was refused before
TikTok did anything, and the right reaction is to slow down, not to give up sooner. So they do not consume
the fault budget. Each one makes the limiter slow down (see `limiter.py`) and the request is re-queued
behind the limiter, up to `max_rate_limit_retries` times and `max_rate_limit_seconds` in total; only when
that separate budget runs out does a `RateLimitedError` reach the caller.

Non-idempotent creates (`segment/audience/` create, `dmp/custom_audience/create/`, `offline/create/`) are not
retried after an *ambiguous* transport failure (a timeout or dropped connection after the request was
sent): TikTok may have created the object, and a blind retry would create a duplicate (ref §7,
"duplicate audience creation"). The caller gets the `RetryableError` and can check before retrying.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """Bounds and backoff for automatic retries."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=5, ge=1, description="Attempts per request for faults (1 = no retry).")
    max_total_seconds: float = Field(default=60.0, gt=0, description="Time budget for fault retries.")
    wait_initial: float = Field(default=0.5, ge=0, description="First backoff, seconds.")
    wait_max: float = Field(default=10.0, ge=0, description="Longest single backoff, seconds.")
    wait_jitter: float = Field(default=0.5, ge=0, description="Random jitter added to each backoff, seconds.")
    wait_exp_base: float = Field(default=2.0, ge=1)
    max_rate_limit_retries: int = Field(default=30, ge=0, description="Re-queues after rate-limit answers.")
    max_rate_limit_seconds: float = Field(
        default=300.0, gt=0, description="Time budget for rate-limit waits."
    )
