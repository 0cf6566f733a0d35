"""Errors of the credential flows. Messages say what to do and never contain a token, secret or code."""

from __future__ import annotations

from ttsync.errors import ResolvableError


class CredentialFlowError(ResolvableError):
    """An OAuth step failed: the message says what to do; `resolution_key` names the catalog entry."""

    def __init__(self, message: str, *, resolution_key: str = "invalid_credentials") -> None:
        super().__init__(message, resolution_key=resolution_key)


class StateError(CredentialFlowError):
    """The OAuth `state` that came back is not one ttsync issued, has expired, or was already used."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, resolution_key="invalid_credentials")
        self.reason = reason  # "malformed", "bad_signature", "expired", "replayed", "wrong_credential"
