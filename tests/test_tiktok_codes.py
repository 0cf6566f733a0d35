"""Code classification: each TikTok code lands in the class and resolution the spec names (ref §5.1)."""

from __future__ import annotations

import pytest

from ttsync.destinations.tiktok.client import (
    RESOLUTION_KEYS,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    TikTokError,
    classify,
)
from ttsync.destinations.tiktok.client.errors import error_class_for, from_envelope


@pytest.mark.parametrize(
    ("code", "cls", "key"),
    [
        (40100, RateLimitedError, "rate_limited"),
        (40016, RateLimitedError, "rate_limited"),
        (40132, RateLimitedError, "rate_limited"),
        (40133, RateLimitedError, "rate_limited"),
        (61000, RateLimitedError, "rate_limited"),
        (40200, RetryableError, "tiktok_unavailable"),
        (40201, RetryableError, "tiktok_unavailable"),
        (40202, RetryableError, "tiktok_unavailable"),
        (40700, RetryableError, "tiktok_unavailable"),
        (50000, RetryableError, "tiktok_unavailable"),
        (50002, RetryableError, "tiktok_unavailable"),
        (51003, RetryableError, "tiktok_unavailable"),
        (52204, RetryableError, "tiktok_unavailable"),
        (60001, RetryableError, "tiktok_unavailable"),
        (40101, AuthenticationError, "invalid_credentials"),
        (40102, AuthenticationError, "token_expired"),
        (40104, AuthenticationError, "invalid_credentials"),
        (40105, AuthenticationError, "invalid_credentials"),
        (40110, AuthenticationError, "invalid_credentials"),
        (40113, AuthenticationError, "invalid_credentials"),
        (40001, PermissionDeniedError, "missing_advertiser_permissions"),
        (40300, NotFoundError, "advertiser_not_found"),
        (40301, NotFoundError, "advertiser_not_found"),
        (40007, NotFoundError, "object_not_found"),
        (40002, InvalidRequestError, "invalid_request"),
        (40000, InvalidRequestError, "invalid_request"),
        (40900, InvalidRequestError, "invalid_request"),
        (49999, InvalidRequestError, "invalid_request"),
    ],
)
def test_code_classes(code: int, cls: type[TikTokError], key: str) -> None:
    err = from_envelope(code, "msg", endpoint="x/", request_id="r")
    assert type(err) is cls
    assert err.resolution_key == key
    assert key in RESOLUTION_KEYS
    assert err.retryable is issubclass(cls, RetryableError)


def test_not_editable_variant_of_40002() -> None:
    rule = classify(40002, "Audience is not editable, please check audience status")
    assert rule.resolution_key == "audience_not_editable"
    assert error_class_for(rule) is InvalidRequestError


def test_every_resolution_key_is_reachable() -> None:
    from ttsync.destinations.tiktok.client.codes import CODE_RULES

    # Three keys come only from message refinements of 40002 (see `classify`).
    refined = {"audience_not_editable", "audience_limit_reached", "audience_disappeared"}
    used = {rule.resolution_key.value for rule in CODE_RULES.values()} | refined
    assert used == set(RESOLUTION_KEYS)
