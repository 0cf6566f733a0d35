"""Keep personal data out of error text: one redaction function for every message that may quote data.

Database drivers, DuckDB, SQLAlchemy and Arrow put the offending *value* in their messages ("Could not parse
string "ann@example.com" according to format...", "Malformed JSON ... Input: +1 415 555 0100"). Such text is
redacted before it is printed by the CLI (plain and `--json`), stored with a workflow (task error,
resolution detail, notification), posted to a webhook or logged.

Two strengths, chosen by where the text comes from (`redact_error`):

- text of a *foreign* exception (DuckDB, SQLAlchemy, Arrow, built-in errors): e-mail addresses, phone-like
  digit runs (7 digits or more), MAID/UUID-shaped values and long hex strings are replaced; for data errors
  (not parser/binder/catalog errors, which talk about the SQL) quoted literals are replaced too;
- text ttsync composed itself (`ttsync.*` exceptions): only e-mail addresses are replaced. These messages
  carry advertiser, audience and event-set ids (long digit runs) that the user needs, and never row values.

Secrets are a separate concern (`ttsync.destinations.tiktok.client._redact`).
"""

from __future__ import annotations

import logging
import re
from typing import Final

REDACTED: Final = "<redacted>"

# An address: anything without spaces, quotes or brackets around an "@" (also partial ones such as "@x.com").
_EMAIL: Final = re.compile(r"[^\s@\"'`<>()\[\]{},;]*@[^\s@\"'`<>()\[\]{},;]+")
# MAIDs (IDFA, AAID) and other UUIDs, with or without dashes, and long hex strings (hashes of identifiers).
_UUID: Final = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])"
)
_HEX: Final = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{32,}(?![0-9A-Za-z])")
# Phone-like: 7 or more digits, optionally after "+", with at most two separators between digits.
_PHONE: Final = re.compile(r"(?<![\w.])\+?\d(?:[\s().-]{0,2}\d){6,}(?![\w])")
# Quoted literals of a data error: 'value', "value" (SQL doubles the quote inside).
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _email(match: re.Match[str]) -> str:
    text = match.group(0)
    # user@host in a URL (a store or source URL with its password already hidden) is not personal data.
    return text if "://" in text else REDACTED


def redact_text(text: str, *, digits: bool = True, quoted: bool = False) -> str:
    """`text` without identifier-looking substrings.

    Always: e-mail addresses. With `digits` (the default): phone-like digit runs of 7 digits or more,
    UUID/MAID-shaped values and hex strings of 32 characters or more. With `quoted`: every quoted literal.
    """
    if quoted:
        text = _QUOTED.sub(f"'{REDACTED}'", text)
    text = _EMAIL.sub(_email, text)
    if digits:
        text = _UUID.sub(REDACTED, text)
        text = _HEX.sub(REDACTED, text)
        text = _PHONE.sub(REDACTED, text)
    return text


def redact_quoted(message: str) -> str:
    """Replace quoted literals in a driver message (data errors quote the offending *value*)."""
    return _QUOTED.sub(f"'{REDACTED}'", message)


def is_foreign(exc: BaseException) -> bool:
    """Whether `exc` was raised by code outside ttsync (its text is not ttsync's own wording)."""
    return not type(exc).__module__.startswith("ttsync")


def _is_sql_error(exc: BaseException) -> bool:
    # DuckDB's parser, binder and catalog errors describe the SQL text (column names, typos): keep their
    # quotes, they help fix the query. Every other foreign error may quote a value.
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return False
    return isinstance(exc, duckdb.ProgrammingError)


def redact_error(exc: BaseException) -> str:
    """The text of `exc`, safe to print, store, post or log (see the module docstring for the strengths)."""
    message = str(exc)
    if not is_foreign(exc):
        return redact_text(message, digits=False)
    return redact_text(message, quoted=not _is_sql_error(exc))


class RedactPIIFilter(logging.Filter):
    """Rewrites a log record so that no e-mail address (or, in arguments, any identifier) reaches a handler.

    The format string is ttsync's own (e-mails only); arguments may be foreign text (full strength)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg, digits=False)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_error(a)
                if isinstance(a, BaseException)
                else redact_text(a)
                if isinstance(a, str)
                else a
                for a in record.args
            )
        caused_by = getattr(record, "caused_by", None)  # stamina's retry records carry the exception's repr
        if isinstance(caused_by, str):
            record.caused_by = redact_text(caused_by)
        if record.exc_info and record.exc_info[1] is not None:
            # A traceback's last line is the exception's text: log it redacted, without the traceback.
            record.msg = (
                f"{record.msg}: {type(record.exc_info[1]).__name__}: {redact_error(record.exc_info[1])}"
            )
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_redaction(*names: str) -> None:
    """Attach `RedactPIIFilter` to the named loggers (default: every logger ttsync logs on). A logger's filters
    see only the records logged on that very logger, so each one is named."""
    for name in names or LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPIIFilter) for f in logger.filters):
            logger.addFilter(RedactPIIFilter())


# Loggers ttsync writes to (its own modules, and stamina's retry messages, which quote the exception).
LOGGERS: Final = ("ttsync", "ttsync.notify.webhook", "stamina")
