"""Keep secrets out of log records and messages.

`oauth2/advertiser/get/` takes the app secret in the query string (ref §4.5), and httpx2 logs every request
URL at INFO. A filter on the `httpx2` logger rewrites secret-bearing query values before any handler sees
them. The filter is attached once, when `ttsync.destinations.tiktok.client` is imported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

_SECRET_QUERY: Final = re.compile(
    r"(?i)\b(secret|client_secret|app_secret|access_token|refresh_token|auth_code)=[^&\s\"']*"
)
REDACTED: Final = "[redacted]"


def redact_query(text: str) -> str:
    """Replace the values of secret-bearing query parameters in `text`."""
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove every occurrence of the given secret values (and secret query values) from `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return redact_query(text)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message arguments so that secret query values never reach a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_query(str(a)) if _mentions_query(a) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def _mentions_query(value: object) -> bool:
    return "=" in str(value)


_INSTALLED = False


def install_log_redaction() -> None:
    """Attach the redaction filter to the `httpx2` logger (idempotent)."""
    global _INSTALLED
    if not _INSTALLED:
        logging.getLogger("httpx2").addFilter(RedactSecretsFilter())
        _INSTALLED = True
