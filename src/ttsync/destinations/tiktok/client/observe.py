"""Who is told of each TikTok answer and of each wait for a rate limiter: the team server's Prometheus metrics
(`ttsync.server.metrics`) register here in its run worker processes. Nothing registers elsewhere, and then a
call costs one empty-list check."""

from __future__ import annotations

from typing import Protocol


class CallObserver(Protocol):
    """Receives one call per TikTok answer and per limiter wait; must be cheap and never raise."""

    def answered(self, endpoint: str, code: str) -> None:
        """An answer of `endpoint` (the API path): TikTok's code, `http_STATUS` or `transport_error`."""

    def waited(self, endpoint: str, seconds: float) -> None:
        """A request to `endpoint` waited `seconds` for its rate limiter before it was sent."""


OBSERVERS: list[CallObserver] = []


def observe(observer: CallObserver) -> None:
    """Tell `observer` of every TikTok call this process makes from now on."""
    OBSERVERS.append(observer)


def answered(endpoint: str, code: str) -> None:
    """Report an answer to every observer."""
    for observer in OBSERVERS:
        observer.answered(endpoint, code)


def waited(endpoint: str, seconds: float) -> None:
    """Report a limiter wait to every observer."""
    for observer in OBSERVERS:
        observer.waited(endpoint, seconds)
