"""ttsync.tiktok: the typed TikTok Business API v1.3 client (async core, sync facade).

    from ttsync.tiktok import TikTokClient
    with TikTokClient(access_token=..., base_url="http://127.0.0.1:8765/open_api/v1.3/") as client:
        audience = client.create_segment_audience("ADVERTISER_ID", "My audience")

See docs/client.md.
"""

from ttsync.tiktok._core import PRODUCTION_BASE_URL, SANDBOX_BASE_URL, ClientStats
from ttsync.tiktok.client import AsyncTikTokClient, build_batch_data
from ttsync.tiktok.codes import RESOLUTION_KEYS, CodeRule, ErrorKind, ResolutionKey, classify
from ttsync.tiktok.errors import (
    AuthenticationError,
    ClientValidationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    TikTokError,
    UnexpectedResponseError,
)
from ttsync.tiktok.limiter import (
    GLOBAL_LIMITERS,
    AdaptiveRateLimiter,
    LimiterRegistry,
    RateLimits,
    group_for_path,
)
from ttsync.tiktok.retry import RetryPolicy
from ttsync.tiktok.sync import TikTokClient

__all__ = [
    "GLOBAL_LIMITERS",
    "PRODUCTION_BASE_URL",
    "RESOLUTION_KEYS",
    "SANDBOX_BASE_URL",
    "AdaptiveRateLimiter",
    "AsyncTikTokClient",
    "AuthenticationError",
    "ClientStats",
    "ClientValidationError",
    "CodeRule",
    "ErrorKind",
    "InvalidRequestError",
    "LimiterRegistry",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RateLimits",
    "ResolutionKey",
    "RetryPolicy",
    "RetryableError",
    "TikTokClient",
    "TikTokError",
    "UnexpectedResponseError",
    "build_batch_data",
    "classify",
    "group_for_path",
]
