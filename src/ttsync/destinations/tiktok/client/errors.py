"""Typed errors raised by the TikTok client.

Every failure is a `TikTokError` carrying the TikTok `code` (None for transport failures), TikTok's
`message`, the `request_id`, the `endpoint` path, and the `resolution_key` the workflows layer maps to a
user-facing resolution. Exception text never contains secrets: it is built only from those fields, and the
client scrubs its own credentials out of any message before building an error.
"""

from __future__ import annotations

from typing import Any

from ttsync.destinations.tiktok.client.codes import (
    HTTP_CLIENT_ERROR_RULE,
    TRANSPORT_RULE,
    CodeRule,
    ErrorKind,
    ResolutionKey,
    classify,
)
from ttsync.errors import ResolvableError


class TikTokError(ResolvableError):
    """Base class of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        endpoint: str,
        resolution_key: str,
        request_id: str | None = None,
        http_status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, resolution_key=resolution_key)
        self.message = message
        self.code = code
        self.endpoint = endpoint
        self.request_id = request_id
        self.http_status = http_status
        self.attempts = attempts
        # True when the request may have been applied although no answer came back (a timeout after
        # sending a non-idempotent create): the client then does not retry it automatically.
        self.ambiguous = False

    def details(self) -> dict[str, Any]:
        """TikTok's code, the request id and the endpoint, stored with a failed task (`workflows show`)."""
        return {"code": self.code, "request_id": self.request_id, "endpoint": self.endpoint}

    @property
    def retryable(self) -> bool:
        """True when retrying the same request later may succeed."""
        return isinstance(self, RetryableError)

    def __str__(self) -> str:
        if self.code is not None:
            code = f"code {self.code}"
        elif self.http_status is not None:
            code = f"HTTP {self.http_status}"
        else:
            code = "no answer"  # a timeout or a refused or dropped connection
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        rid = f", request_id {self.request_id}" if self.request_id else ""
        return f"{self.endpoint}: {code}: {self.message} [{self.resolution_key}; {tries}{rid}]"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, endpoint={self.endpoint!r}, "
            f"resolution_key={self.resolution_key!r}, request_id={self.request_id!r}, "
            f"attempts={self.attempts}, message={self.message!r})"
        )


class RetryableError(TikTokError):
    """A transient failure: rate limits, TikTok-side faults, HTTP 5xx, timeouts, connection errors."""


class RateLimitedError(RetryableError):
    """TikTok answered with a rate-limit code (40100 and friends) and the rate-limit budget ran out."""


class AuthenticationError(TikTokError):
    """The credential is wrong, revoked or expired (40101-40110, 40113)."""


class PermissionDeniedError(TikTokError):
    """The token may not do this on this advertiser (40001: Analyst role, deleted advertiser, scope)."""


class NotFoundError(TikTokError):
    """The advertiser or object does not exist (40300, 40301, 40007)."""


class InvalidRequestError(TikTokError):
    """TikTok rejected the request itself (40002 and every other code); fix the request, do not retry."""


class ClientValidationError(InvalidRequestError):
    """The client refused to send a request that TikTok would reject (never contains the offending value)."""


class UnexpectedResponseError(RetryableError):
    """The response was not a TikTok envelope (an HTML gateway page, or a body that does not parse)."""


_CLASS_BY_KIND: dict[ErrorKind, type[TikTokError]] = {
    ErrorKind.RETRYABLE: RetryableError,
    ErrorKind.AUTHENTICATION: AuthenticationError,
    ErrorKind.PERMISSION: PermissionDeniedError,
    ErrorKind.NOT_FOUND: NotFoundError,
    ErrorKind.INVALID_REQUEST: InvalidRequestError,
}


def error_class_for(rule: CodeRule) -> type[TikTokError]:
    """The exception class that represents `rule`."""
    if rule.resolution_key is ResolutionKey.RATE_LIMITED:
        return RateLimitedError
    return _CLASS_BY_KIND[rule.kind]


def from_envelope(
    code: int, message: str, *, endpoint: str, request_id: str | None, http_status: int = 200
) -> TikTokError:
    """Build the typed error for a non-success TikTok envelope."""
    rule = classify(code, message)
    return error_class_for(rule)(
        message or rule.meaning,
        code=code,
        endpoint=endpoint,
        resolution_key=rule.resolution_key.value,
        request_id=request_id,
        http_status=http_status,
    )


def from_http_status(status: int, *, endpoint: str, detail: str) -> TikTokError:
    """Build the typed error for an HTTP-level failure (no TikTok envelope)."""
    if status >= 500:
        return RetryableError(
            detail,
            code=None,
            endpoint=endpoint,
            resolution_key=TRANSPORT_RULE.resolution_key.value,
            http_status=status,
        )
    return InvalidRequestError(
        detail,
        code=None,
        endpoint=endpoint,
        resolution_key=HTTP_CLIENT_ERROR_RULE.resolution_key.value,
        http_status=status,
    )


def transport_error(endpoint: str, detail: str) -> RetryableError:
    """Build the typed error for a timeout or connection failure."""
    return RetryableError(
        detail, code=None, endpoint=endpoint, resolution_key=TRANSPORT_RULE.resolution_key.value
    )
