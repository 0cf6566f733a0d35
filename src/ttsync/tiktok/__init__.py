"""Short re-export of the TikTok client, kept for one release: import `ttsync.destinations.tiktok.client`.

    from ttsync.tiktok import TikTokClient

Nothing inside ttsync imports this module (an import-linter contract says so).
"""

from ttsync.destinations.tiktok.client import (
    GLOBAL_LIMITERS,
    PRODUCTION_BASE_URL,
    RESOLUTION_KEYS,
    SANDBOX_BASE_URL,
    AdaptiveRateLimiter,
    AsyncTikTokClient,
    AuthenticationError,
    ClientStats,
    ClientValidationError,
    CodeRule,
    ErrorKind,
    InvalidRequestError,
    LimiterRegistry,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RateLimits,
    ResolutionKey,
    RetryableError,
    RetryPolicy,
    TikTokClient,
    TikTokError,
    UnexpectedResponseError,
    build_batch_data,
    classify,
    group_for_path,
)

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
