"""The closed list of reasons a value is rejected, and the exception the scalar API raises."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a value did not become an identifier. Closed list, documented in docs/identity.md."""

    EMPTY = "empty"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    PHONE_REGION_UNKNOWN = "phone_region_unknown"
    INVALID_MAID = "invalid_maid"
    MAID_ALL_ZERO = "maid_all_zero"
    NOT_SHA256_HEX = "not_sha256_hex"
    NOT_MD5_HEX = "not_md5_hex"
    LOOKS_HASHED = "looks_hashed"
    MISSING_KEY = "missing_key"


class InvalidIdentifier(ValueError):
    """A value cannot be turned into an identifier.

    The message names the kind and the reason only: the rejected value is never part of it, because
    it is personal data and exception texts end up in logs.
    """

    def __init__(self, kind: str, reason: Reason) -> None:
        super().__init__(f"{kind} value rejected: {reason.value}")
        self.kind = kind
        self.reason = reason
