"""Classify any exception raised by a task into a resolution key and a PII-free message.

Every message is passed through `ttsync.redact.redact_error` before it is stored: it is shown by `workflows
show`, copied into the notification and posted to webhooks."""

from __future__ import annotations

from typing import Any

from ttsync.errors import ResolvableError
from ttsync.redact import redact_error, redact_text
from ttsync.sources.base import SourceError


def classify_exception(exc: BaseException) -> dict[str, Any]:
    """`{resolution, message, kind, code?, request_id?, endpoint?}` for storing with a failed task."""
    if isinstance(exc, SourceError):
        return source_failure(exc)
    if isinstance(exc, ResolvableError):
        return {
            "resolution": str(exc.resolution_key),
            "message": redact_error(exc),
            "kind": type(exc).__name__,
            **exc.details(),
        }
    # An unexpected error: its text may carry data values, so only its type is kept.
    return {
        "resolution": "internal_error",
        "message": f"unexpected {type(exc).__name__} inside ttsync (a bug: please report it with the workflow id)",
        "kind": type(exc).__name__,
    }


def source_failure(exc: SourceError) -> dict[str, Any]:
    """The stored error of a source failure: the resolution, ttsync's message and the database's own message.

    The one place where a database's text enters a workflow (and from there `workflows show`, notifications
    and webhooks): any redaction of database texts belongs here.
    """
    error: dict[str, Any] = {
        "resolution": exc.resolution_key,
        "message": redact_error(exc),
        "kind": type(exc).__name__,
    }
    if exc.database_message:
        # Sources redact driver messages when they build the error; redact again in case another path did not.
        error["database_message"] = redact_text(exc.database_message)
    return error
