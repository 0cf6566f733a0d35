"""`TikTokClient`: a blocking facade over `AsyncTikTokClient` for simple callers.

Design choice: the facade owns a private event loop running in a daemon thread and submits each call to it
with `asyncio.run_coroutine_threadsafe`. Compared with `asyncio.run()` per call this keeps one connection
pool alive across calls (the pool is bound to its loop), and it works even when the caller is itself inside
a running event loop (a notebook, a web handler), where `asyncio.run()` would refuse to start. Several
threads may call one facade at once; their requests then run concurrently on the private loop, under the
same concurrency bound and limiter.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx2
from pydantic import SecretStr

from ttsync.destinations.tiktok.client._core import PRODUCTION_BASE_URL
from ttsync.destinations.tiktok.client.client import AsyncTikTokClient
from ttsync.destinations.tiktok.client.limiter import LimiterRegistry, RateLimits
from ttsync.destinations.tiktok.client.models.dmp import CustomAudienceSummary
from ttsync.destinations.tiktok.client.retry import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[AsyncTikTokClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[TikTokClient, P], R]:
    """Expose an `AsyncTikTokClient` coroutine method as a blocking method with the same signature."""

    @functools.wraps(method)
    def call(self: TikTokClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self.aio, *args, **kwargs))

    return call


class TikTokClient:
    """Blocking TikTok client with the constructor arguments and methods of `AsyncTikTokClient`.

    Use as a context manager (or call `close()`) so the private loop thread and the pool are released.
    """

    def __init__(
        self,
        *,
        access_token: str | SecretStr | None = None,
        app_id: str | None = None,
        app_secret: str | SecretStr | None = None,
        base_url: str = PRODUCTION_BASE_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_concurrency: int = 32,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimits | None = None,
        limiters: LimiterRegistry | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "access_token": access_token,
            "app_id": app_id,
            "app_secret": app_secret,
            "base_url": base_url,
            "transport": transport,
            "timeout": timeout,
            "max_concurrency": max_concurrency,
            "retry": retry,
            "rate_limits": rate_limits,
            "limiters": limiters,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ttsync-tiktok-client", daemon=True
        )
        self._thread.start()
        self._closed = False

        async def build() -> AsyncTikTokClient:
            # Built on the private loop so its semaphore and pool belong to that loop.
            return AsyncTikTokClient(**kwargs)

        try:
            self.aio: AsyncTikTokClient = self._run(build())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, R]) -> R:
        if self._closed:
            coro.close()
            raise RuntimeError("TikTokClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def close(self) -> None:
        """Close the connection pool and stop the private loop (idempotent)."""
        if self._closed:
            return
        try:
            self._run(self.aio.aclose())
        finally:
            self._closed = True
            self._stop_loop()

    def __enter__(self) -> TikTokClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TikTokClient({self.aio!r})"

    get_access_token = _blocking(AsyncTikTokClient.get_access_token)
    get_authorized_advertisers = _blocking(AsyncTikTokClient.get_authorized_advertisers)
    revoke_token = _blocking(AsyncTikTokClient.revoke_token)
    refresh_user_token = _blocking(AsyncTikTokClient.refresh_user_token)
    create_segment_audience = _blocking(AsyncTikTokClient.create_segment_audience)
    delete_segment_audience = _blocking(AsyncTikTokClient.delete_segment_audience)
    segment_mapping = _blocking(AsyncTikTokClient.segment_mapping)
    add_segment_members = _blocking(AsyncTikTokClient.add_segment_members)
    remove_segment_members = _blocking(AsyncTikTokClient.remove_segment_members)
    list_custom_audiences = _blocking(AsyncTikTokClient.list_custom_audiences)
    get_custom_audiences = _blocking(AsyncTikTokClient.get_custom_audiences)
    upload_audience_file = _blocking(AsyncTikTokClient.upload_audience_file)
    create_custom_audience = _blocking(AsyncTikTokClient.create_custom_audience)
    create_lookalike_audience = _blocking(AsyncTikTokClient.create_lookalike_audience)
    update_custom_audience = _blocking(AsyncTikTokClient.update_custom_audience)
    share_custom_audiences = _blocking(AsyncTikTokClient.share_custom_audiences)
    cancel_custom_audience_share = _blocking(AsyncTikTokClient.cancel_custom_audience_share)
    delete_custom_audiences = _blocking(AsyncTikTokClient.delete_custom_audiences)
    create_offline_event_set = _blocking(AsyncTikTokClient.create_offline_event_set)
    get_offline_event_sets = _blocking(AsyncTikTokClient.get_offline_event_sets)
    track_events = _blocking(AsyncTikTokClient.track_events)

    def iter_custom_audiences(
        self, advertiser_id: str, *, page_size: int = 100
    ) -> Iterator[CustomAudienceSummary]:
        """Every audience of the advertiser, one page request at a time."""
        page = 1
        while True:
            result = self.list_custom_audiences(advertiser_id, page=page, page_size=page_size)
            yield from result.audiences
            if not result.audiences or page >= result.page_info.total_page:
                return
            page += 1
