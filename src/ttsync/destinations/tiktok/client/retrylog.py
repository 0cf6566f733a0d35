"""Readable retry messages: one line per retry episode instead of stamina's raw `stamina.retry_scheduled` records.

stamina calls its on-retry hooks each time it schedules a retry. With 8 requests in flight, an outage makes
every one of them retry at the same moments: stamina's default hook logs each (32 raw lines for 8 requests and
5 attempts). `log_retry` writes one line per *episode*: the same endpoint failing the same way at the same
attempt number, within the wait before the next attempt, is said once:

    TikTok segment/mapping/ did not answer (ConnectError); attempt 1 of 5 failed, next in 0.6s

The full detail (the exception's repr, the time waited so far) goes to the DEBUG level (`ttsync -v`).
`install_retry_logging()` puts the hook in place of stamina's default (the CLI does it at start).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from ttsync.destinations.tiktok.client.errors import TikTokError

log = logging.getLogger("ttsync.retry")


@dataclass(frozen=True)
class _Call:
    what: str  # e.g. "TikTok segment/mapping/"
    max_attempts: int


_CURRENT: ContextVar[_Call | None] = ContextVar("ttsync_retry_call", default=None)


@contextlib.contextmanager
def retrying(what: str, max_attempts: int) -> Iterator[None]:
    """Name the call whose retries follow (the hook runs in the same context, so it can say what and of how
    many attempts)."""
    token = _CURRENT.set(_Call(what, max_attempts))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, TikTokError):
        if exc.code is not None:
            return f"answered code {exc.code}"
        if exc.http_status is not None:
            return f"answered HTTP {exc.http_status}"
        kind = exc.message.split(":", 1)[0] if ":" in exc.message else type(exc).__name__
        return f"did not answer ({kind})"
    return f"failed ({type(exc).__name__})"


def describe_retry(details: RetryDetails) -> str:
    """The readable line of one scheduled retry."""
    call = _CURRENT.get()
    what = call.what if call is not None else details.name
    of = f" of {call.max_attempts}" if call is not None else ""
    return (
        f"{what} {_cause(details.caused_by)}; attempt {details.retry_num}{of} failed, "
        f"next in {details.wait_for:.1f}s"
    )


class _Episodes:
    """Lines said recently, so concurrent requests failing alike are reported once per attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said: dict[str, float] = {}

    def first(self, line_key: str, window: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._said) > 1000:  # bounded: forget old episodes
                self._said = {k: t for k, t in self._said.items() if t > now}
            until = self._said.get(line_key)
            if until is not None and until > now:
                return False
            self._said[line_key] = now + window
            return True


_EPISODES = _Episodes()


def log_retry(details: RetryDetails) -> None:
    """stamina on-retry hook: one WARNING line per retry episode, the full detail at DEBUG."""
    call = _CURRENT.get()
    key = f"{call.what if call else details.name}|{_cause(details.caused_by)}|{details.retry_num}"
    if _EPISODES.first(key, details.wait_for + 1.0):
        log.warning("%s", describe_retry(details))
    log.debug(
        "retry detail: callable=%s retry_num=%s wait_for=%.2fs waited_so_far=%.2fs caused_by=%r",
        details.name,
        details.retry_num,
        details.wait_for,
        details.waited_so_far,
        details.caused_by,
    )


def install_retry_logging() -> None:
    """Replace stamina's raw retry records by `log_retry` (process-wide; the CLI calls it at start)."""
    set_on_retry_hooks([log_retry])
