"""TikTok return codes as data: code -> error class, resolution key, retry decision.

This module is the single source of truth for classifying a TikTok failure. The workflows layer builds its
resolution catalog (what happened, why, how to fix it) on `RESOLUTION_KEYS` and `classify()`; the client
builds its typed exceptions and its retry decisions on the same data.

Sources: ref §5.1 (code table and how connectors classify codes), ref §8 item 7 (retry recommendation),
ref §2.5 (the "Audience is not editable" variant of 40002).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ErrorKind(StrEnum):
    """The five failure classes; each maps to one exception class in `ttsync.destinations.tiktok.client.errors`."""

    RETRYABLE = "retryable"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"


class ResolutionKey(StrEnum):
    """Names of resolutions (what the user should do). The workflows catalog is keyed by these values."""

    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a resolution name, not a secret)
    ADVERTISER_NOT_FOUND = "advertiser_not_found"
    OBJECT_NOT_FOUND = "object_not_found"
    MISSING_ADVERTISER_PERMISSIONS = "missing_advertiser_permissions"
    RATE_LIMITED = "rate_limited"
    TIKTOK_UNAVAILABLE = "tiktok_unavailable"
    INVALID_REQUEST = "invalid_request"
    AUDIENCE_NOT_EDITABLE = "audience_not_editable"
    AUDIENCE_LIMIT_REACHED = "audience_limit_reached"
    AUDIENCE_DISAPPEARED = "audience_disappeared"


RESOLUTION_KEYS: Final[tuple[str, ...]] = tuple(key.value for key in ResolutionKey)


@dataclass(frozen=True, slots=True)
class CodeRule:
    """How one TikTok code is handled."""

    kind: ErrorKind
    resolution_key: ResolutionKey
    meaning: str

    @property
    def retryable(self) -> bool:
        """True when the client may retry the request automatically."""
        return self.kind is ErrorKind.RETRYABLE


def _rule(kind: ErrorKind, key: ResolutionKey, meaning: str) -> CodeRule:
    return CodeRule(kind=kind, resolution_key=key, meaning=meaning)


_R, _A, _P, _N, _I = (
    ErrorKind.RETRYABLE,
    ErrorKind.AUTHENTICATION,
    ErrorKind.PERMISSION,
    ErrorKind.NOT_FOUND,
    ErrorKind.INVALID_REQUEST,
)
_K = ResolutionKey

# Exact codes (ref §5.1). Anything not listed falls through to the range rules, then to INVALID_REQUEST.
CODE_RULES: Final = MappingProxyType(
    {
        40000: _rule(_I, _K.INVALID_REQUEST, "Invalid parameters"),
        40001: _rule(_P, _K.MISSING_ADVERTISER_PERMISSIONS, "No permission (or the advertiser was deleted)"),
        40002: _rule(_I, _K.INVALID_REQUEST, "Parameter error"),
        40007: _rule(_N, _K.OBJECT_NOT_FOUND, "Object does not exist"),
        40011: _rule(_I, _K.INVALID_REQUEST, "Too many IDs in one request"),
        40016: _rule(_R, _K.RATE_LIMITED, "Requests too frequent (app-level limit on an endpoint)"),
        40050: _rule(_I, _K.INVALID_REQUEST, "Duplicate request"),
        40061: _rule(_I, _K.INVALID_REQUEST, "Invalid batch size"),
        40062: _rule(_I, _K.INVALID_REQUEST, "PII not hashed"),
        40063: _rule(_I, _K.INVALID_REQUEST, "Invalid partner name"),
        40100: _rule(_R, _K.RATE_LIMITED, "Requests too frequent (app-level rate limit)"),
        40101: _rule(
            _A, _K.INVALID_CREDENTIALS, "Invalid authentication parameters (app id / secret / auth code)"
        ),
        40102: _rule(_A, _K.TOKEN_EXPIRED, "Access token expired"),
        40103: _rule(_A, _K.TOKEN_EXPIRED, "Refresh token expired"),
        40104: _rule(_A, _K.INVALID_CREDENTIALS, "Access token empty"),
        40105: _rule(_A, _K.INVALID_CREDENTIALS, "Access token invalid or revoked"),
        40106: _rule(_A, _K.INVALID_CREDENTIALS, "Token does not match the advertiser"),
        40107: _rule(_A, _K.INVALID_CREDENTIALS, "Invalid refresh token"),
        40108: _rule(_A, _K.INVALID_CREDENTIALS, "Invalid grant type"),
        40109: _rule(_A, _K.INVALID_CREDENTIALS, "Authentication error"),
        40110: _rule(_A, _K.INVALID_CREDENTIALS, "Invalid auth code (cancelled, used or expired)"),
        40113: _rule(_A, _K.INVALID_CREDENTIALS, "App blocked, or app id inconsistent with the token"),
        # Scope / allow-list problems: the spec's classes put them under "the rest" (invalid request), but the
        # fix is the same as for 40001, so they share its resolution.
        40118: _rule(_I, _K.MISSING_ADVERTISER_PERMISSIONS, "App not on the allow-list"),
        40119: _rule(_I, _K.MISSING_ADVERTISER_PERMISSIONS, "Advertiser belongs to a different company"),
        40125: _rule(_I, _K.MISSING_ADVERTISER_PERMISSIONS, "Developer lacks permission"),
        40130: _rule(_I, _K.MISSING_ADVERTISER_PERMISSIONS, "Scope not authorised"),
        40132: _rule(_R, _K.RATE_LIMITED, "QPS limited for one field value"),
        40133: _rule(_R, _K.RATE_LIMITED, "Advertiser-level QPS limit"),
        40200: _rule(_R, _K.TIKTOK_UNAVAILABLE, "Task error"),
        40201: _rule(_R, _K.TIKTOK_UNAVAILABLE, "Task not ready"),
        40202: _rule(_R, _K.TIKTOK_UNAVAILABLE, "Write conflict"),
        40300: _rule(_N, _K.ADVERTISER_NOT_FOUND, "Advertiser does not exist"),
        40301: _rule(_N, _K.ADVERTISER_NOT_FOUND, "Advertiser cannot be matched"),
        40700: _rule(_R, _K.TIKTOK_UNAVAILABLE, "Internal validation error"),
        50000: _rule(_R, _K.TIKTOK_UNAVAILABLE, "System error"),
        50002: _rule(_R, _K.TIKTOK_UNAVAILABLE, "TikTok-side processing error"),
        60001: _rule(_R, _K.TIKTOK_UNAVAILABLE, "Maintenance"),
        61000: _rule(_R, _K.RATE_LIMITED, "Too many requests"),
    }
)

# Codes that are a rate limit: the client's limiter slows down on them, and retries them on a budget of its
# own rather than the fault budget (see `ttsync.destinations.tiktok.client.retry`).
RATE_LIMIT_CODES: Final = frozenset(
    code for code, rule in CODE_RULES.items() if rule.resolution_key is ResolutionKey.RATE_LIMITED
)

SUCCESS_CODE: Final = 0
PARTIAL_SUCCESS_CODE: Final = 20001  # ref §3.4: PARTIAL_OK, treated as success

# ref §2.5: "Audience is not editable, please check audience status" (a 40002 variant).
_NOT_EDITABLE_MARKER: Final = "not editable"

# Fallbacks for transport-level failures (no TikTok code at all).
TRANSPORT_RULE: Final = _rule(
    _R, _K.TIKTOK_UNAVAILABLE, "TikTok could not be reached (timeout, connection, HTTP 5xx)"
)
HTTP_CLIENT_ERROR_RULE: Final = _rule(
    _I, _K.INVALID_REQUEST, "HTTP 4xx: the request never reached the API logic"
)
_UNKNOWN_5XXXX: Final = _rule(_R, _K.TIKTOK_UNAVAILABLE, "Internal TikTok service error")
_UNKNOWN: Final = _rule(_I, _K.INVALID_REQUEST, "Request rejected")


# ref §5.1: 40001 is reused for a deleted advertiser; the seeds' "Advertiser not found" also covers an ad account
# that is not approved. Those are not permission problems the user fixes with a role.
_ADVERTISER_GONE_MARKERS: Final = ("deleted", "not approved", "does not exist", "not exist")
# ref §2.5 / §9: the 400-audience cap; the code is unconfirmed, the emulator answers 40002 naming the limit.
_AUDIENCE_CAP_MARKERS: Final = ("limit of 400", "reached the limit", "audience limit")


# A mapping naming an audience that was deleted, expired or never existed (the emulator answers 40002 so; an
# emulator restarted without --state forgets every audience). Retrying cannot help; restarting recreates it.
_AUDIENCE_GONE_MARKERS: Final = ("the audience does not exist", "has expired")


def classify(code: int, message: str = "") -> CodeRule:
    """Return the rule for a non-zero TikTok `code` (the `message` refines 40001 and 40002)."""
    lowered = message.lower()
    if code == 40002 and "audience" in lowered and any(m in lowered for m in _AUDIENCE_GONE_MARKERS):
        # Still an invalid request for the client (same exception class, no retry); only the fix differs.
        return _rule(_I, _K.AUDIENCE_DISAPPEARED, "The audience no longer exists or has expired")
    if code == 40002 and _NOT_EDITABLE_MARKER in lowered:
        return _rule(
            _I, _K.AUDIENCE_NOT_EDITABLE, "Audience is not editable (under 1,000 people or updating)"
        )
    if code == 40002 and any(marker in lowered for marker in _AUDIENCE_CAP_MARKERS):
        return _rule(_I, _K.AUDIENCE_LIMIT_REACHED, "The advertiser has reached the custom audience limit")
    if code == 40001 and "advertiser" in lowered and any(m in lowered for m in _ADVERTISER_GONE_MARKERS):
        return _rule(_P, _K.ADVERTISER_NOT_FOUND, "The advertiser was deleted or is not approved")
    rule = CODE_RULES.get(code)
    if rule is not None:
        return rule
    # ref §5.1: 51xxx / 52xxx internal errors; every 5xxxx is treated as a TikTok-side fault.
    if 50000 <= code <= 59999:
        return _UNKNOWN_5XXXX
    return _UNKNOWN


def is_success(code: int) -> bool:
    """True for `0` (OK) and `20001` (partial success, ref §3.4)."""
    return code in (SUCCESS_CODE, PARTIAL_SUCCESS_CODE)
