"""The reader interface every warehouse source implements, and its error type."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from types import TracebackType

import pyarrow as pa

from ttsync.redact import redact_quoted, redact_text

DEFAULT_BATCH_ROWS = 65_536

__all__ = ["DEFAULT_BATCH_ROWS", "Source", "SourceError", "redact_quoted", "redact_text"]


class SourceError(Exception):
    """A source cannot be opened, a query is refused, or a query failed. Messages never contain row values:
    driver messages are redacted (`ttsync.redact`) before they are put in one."""


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
