"""Short re-export of the TikTok client, kept for one release: import `ttsync.destinations.tiktok.client`.

    from ttsync.tiktok import TikTokClient

Nothing inside ttsync imports this module (an import-linter contract says so).
"""

from ttsync.destinations.tiktok.client._core import PRODUCTION_BASE_URL, SANDBOX_BASE_URL, ClientStats
from ttsync.destinations.tiktok.client.client import AsyncTikTokClient, build_batch_data
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
