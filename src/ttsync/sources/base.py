"""The reader interface every warehouse source implements, and its error type."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from types import TracebackType

import pyarrow as pa

from ttsync.errors import ResolvableError
from ttsync.redact import redact_quoted, redact_text

DEFAULT_BATCH_ROWS = 65_536

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "SOURCE_CONFIGURATION",
    "SOURCE_NOT_FOUND",
    "SOURCE_QUERY_FAILED",
    "SOURCE_UNREACHABLE",
    "Source",
    "SourceError",
    "classify_database_message",
    "redact_quoted",
    "redact_text",
]


# Resolution keys of source failures (entries of `ttsync.workflows.resolutions`).
SOURCE_QUERY_FAILED = "source_query_failed"  # the warehouse refused the query: syntax, unknown column, data
SOURCE_NOT_FOUND = "source_not_found"  # the source's file, or a table or file the query reads, is missing
SOURCE_UNREACHABLE = "source_unreachable"  # no connection: refused, unknown host, login refused, locked file
SOURCE_CONFIGURATION = "configuration_error"  # the source's settings cannot work (URL, driver, env variable)

# Driver messages that say a table or file is missing, whatever the exception class (SQLite raises
# OperationalError for a missing table and for a syntax error alike).
_NOT_FOUND = re.compile(
    r"(?i)(table with name .* does not exist|no such table|relation .* does not exist|undefinedtable|"
    r"no files found that match|unable to open database file|cannot open file|no such file)"
)
# Driver messages that say the server could not be reached or refused the login.
_UNREACHABLE = re.compile(
    r"(?i)(connection refused|could not connect|connection to server|could not translate host name|"
    r"name or service not known|timeout expired|password authentication failed|authentication failed|"
    r"access denied|role .* does not exist|database .* does not exist|server closed the connection|"
    r"could not set lock|conflicting lock)"
)


class SourceError(ResolvableError):
    """A source cannot be opened or a query failed. Messages never contain row values.

    `resolution_key` names the resolution a workflow shows (`source_query_failed`, `source_not_found`,
    `source_unreachable` or `configuration_error`); `database_message` is the database's own message (already
    stripped of quoted literals), kept apart so a workflow can show it under its own heading.
    """

    def __init__(
        self, message: str, *, resolution_key: str = SOURCE_QUERY_FAILED, database_message: str | None = None
    ) -> None:
        super().__init__(message, resolution_key=resolution_key)
        self.database_message = database_message


def classify_database_message(message: str, *, connecting: bool = False) -> str:
    """The resolution key of a database failure from its message: a missing table or file, an unreachable
    server or refused login, otherwise a query the database refused. `connecting`: the failure happened while
    opening the connection (before any query ran), which makes an unrecognised message `source_unreachable`."""
    if _NOT_FOUND.search(message):
        return SOURCE_NOT_FOUND
    if _UNREACHABLE.search(message) or connecting:
        return SOURCE_UNREACHABLE
    return SOURCE_QUERY_FAILED


class Source(abc.ABC):
    """An open warehouse connection that streams query results as Arrow record batches."""

    name: str

    @abc.abstractmethod
    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Run `sql` and yield its rows in record batches of at most `batch_rows` rows, without
        materializing the whole result in Python objects."""

    @abc.abstractmethod
    def columns(self, sql: str) -> list[str]:
        """The column names `sql` returns, without fetching its rows."""

    def schema(self, sql: str) -> pa.Schema | None:
        """The Arrow types of `sql`'s columns without fetching rows, or None when the source only learns them
        from the rows (checks then happen batch by batch)."""
        return None

    def read_all(self, sql: str) -> pa.Table:
        """Convenience for small results (tests, previews): all batches as one table."""
        batches = list(self.stream(sql))
        if not batches:
            raise SourceError(f"source {self.name!r}: the query produced no result set")
        return pa.Table.from_batches(batches)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
