"""The reader interface every warehouse source implements, and its error type."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from types import TracebackType

import pyarrow as pa

DEFAULT_BATCH_ROWS = 65_536

_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


class SourceError(Exception):
    """A source cannot be opened or a query failed. Messages never contain row values."""


def redact_quoted(message: str) -> str:
    """Replace quoted literals in a driver message: data errors quote the offending *value*."""
    return _QUOTED.sub("'<redacted>'", message)


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
