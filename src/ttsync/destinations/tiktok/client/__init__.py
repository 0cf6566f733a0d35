"""ttsync.destinations.tiktok.client: the typed TikTok Business API v1.3 client (async core, sync facade).

    from ttsync.destinations.tiktok.client import TikTokClient
    with TikTokClient(access_token=..., base_url="http://127.0.0.1:8765/open_api/v1.3/") as client:
        audience = client.create_segment_audience("ADVERTISER_ID", "My audience")

See docs/client.md.
"""

from ttsync.destinations.tiktok.client._core import PRODUCTION_BASE_URL, SANDBOX_BASE_URL, ClientStats
from ttsync.destinations.tiktok.client.batch_data import build_batch_data
from ttsync.destinations.tiktok.client.client import AsyncTikTokClient
from ttsync.destinations.tiktok.client.codes import (
    RESOLUTION_KEYS,
    CodeRule,
    ErrorKind,
    ResolutionKey,
    classify,
)
from ttsync.destinations.tiktok.client.errors import (
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
from ttsync.destinations.tiktok.client.limiter import (
    GLOBAL_LIMITERS,
    AdaptiveRateLimiter,
    LimiterRegistry,
    RateLimits,
    group_for_path,
)
from ttsync.destinations.tiktok.client.retry import RetryPolicy
from ttsync.destinations.tiktok.client.sync import TikTokClient

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
