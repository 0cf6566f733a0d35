"""DuckDB-backed sources: a DuckDB database file (opened read-only), or CSV / Parquet files as tables."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from ttsync.redact import redact_error
from ttsync.sources.base import (
    DEFAULT_BATCH_ROWS,
    SOURCE_NOT_FOUND,
    SOURCE_QUERY_FAILED,
    SOURCE_UNREACHABLE,
    Source,
    SourceError,
    classify_database_message,
)
from ttsync.sources.guard import check_read_only_query, lock_down
from ttsync.sqltext import sql_identifier, sql_literal


def _describe(exc: duckdb.Error | pa.ArrowException) -> str:
    # Parser, catalog and binder errors talk about the SQL text: their quotes help fix the query. Data errors
    # (conversion, JSON, strptime, ...) quote or print the offending value: `redact_error` removes
    # identifier-looking text from every message, and quoted literals from data errors.
    return redact_error(exc).strip()


def _query_failed(name: str, exc: duckdb.Error | pa.ArrowException) -> SourceError:
    """The `SourceError` of a failed query: the database's message and the resolution it calls for."""
    message = _describe(exc)
    if isinstance(exc, duckdb.CatalogException | duckdb.IOException):
        key = classify_database_message(message)  # a missing table or file (not an unknown function)
    else:
        key = SOURCE_QUERY_FAILED
    hint = ""
    if isinstance(exc, duckdb.PermissionException):
        # The sandbox (`guard.lock_down`) refused a file the query tried to read or write.
        hint = (
            "; a source query may read only the source's own file: add the file as a source of its own "
            "(`ttsync sources add`) or load it into the warehouse"
        )
    return SourceError(
        f"source {name!r}: the query failed: {message}{hint}", resolution_key=key, database_message=message
    )


class DuckDBSource(Source):
    """Queries run by DuckDB; results stream through `to_arrow_reader` (Arrow batches, no Python rows)."""

    def __init__(
        self, name: str, connection: duckdb.DuckDBPyConnection, spill_dir: Path | None = None
    ) -> None:
        self.name = name
        self._connection = connection
        self._spill_dir = spill_dir

    @classmethod
    def open_database(cls, name: str, path: Path) -> DuckDBSource:
        """Open a DuckDB database file read-only (ttsync never writes to a user's warehouse)."""
        if not path.is_file():
            raise SourceError(
                f"source {name!r}: DuckDB file {path} does not exist; fix `path` "
                "(relative paths start at the workspace folder) or create it with `ttsync init --sample`",
                resolution_key=SOURCE_NOT_FOUND,
            )
        spill = _private_spill_dir()
        try:
            connection = duckdb.connect(str(path), read_only=True)
            lock_down(connection, spill_dir=spill)  # the file is open; nothing else may be read or written
        except duckdb.Error as exc:
            shutil.rmtree(spill, ignore_errors=True)
            message = _describe(exc)
            raise SourceError(
                f"source {name!r}: cannot open DuckDB file {path}: {message}",
                resolution_key=SOURCE_UNREACHABLE,
                database_message=message,
            ) from None
        return cls(name, connection, spill)

    @classmethod
    def open_file(
        cls, name: str, path: Path, file_kind: Literal["csv", "parquet"], table: str
    ) -> DuckDBSource:
        """Expose a CSV or Parquet file (or glob) as the view `table` in an in-memory DuckDB."""
        if not any(ch in str(path) for ch in "*?[") and not path.exists():
            raise SourceError(
                f"source {name!r}: {file_kind} file {path} does not exist; fix `path`",
                resolution_key=SOURCE_NOT_FOUND,
            )
        connection = duckdb.connect(":memory:")
        reader = "read_csv" if file_kind == "csv" else "read_parquet"
        spill = _private_spill_dir()
        try:
            lock_down(connection, [path], spill_dir=spill)  # this file (or the glob's folder) only
            connection.execute(
                f"CREATE VIEW {sql_identifier(table)} AS SELECT * FROM {reader}({sql_literal(path)})"
            )
        except duckdb.Error as exc:
            connection.close()
            message = _describe(exc)
            shutil.rmtree(spill, ignore_errors=True)
            raise SourceError(
                f"source {name!r}: cannot read {file_kind} file {path}: {message}",
                resolution_key=classify_database_message(message),
                database_message=message,
            ) from None
        return cls(name, connection, spill)

    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Run `sql` on a fresh cursor and yield Arrow record batches of at most `batch_rows` rows."""
        check_read_only_query(self.name, sql)
        cursor = self._connection.cursor()
        try:
            try:
                relation = cursor.sql(sql)
                if relation is None:
                    raise SourceError(
                        f"source {self.name!r}: the query returns no rows (use a SELECT statement)"
                    )
                reader = _arrow_reader(relation, batch_rows)
            except duckdb.Error as exc:
                raise _query_failed(self.name, exc) from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (duckdb.Error, pa.ArrowException) as exc:
                    raise _query_failed(self.name, exc) from None
                if batch.num_rows:
                    yield batch
        finally:
            cursor.close()

    def columns(self, sql: str) -> list[str]:
        """Column names of `sql` (DuckDB binds the query without running it)."""
        check_read_only_query(self.name, sql)
        cursor = self._connection.cursor()
        try:
            relation = cursor.sql(sql)
            if relation is None:
                raise SourceError(f"source {self.name!r}: the query returns no rows (use a SELECT statement)")
            return list(relation.columns)
        except duckdb.Error as exc:
            raise _query_failed(self.name, exc) from None
        finally:
            cursor.close()

    def schema(self, sql: str) -> pa.Schema | None:
        """Arrow types of `sql`'s columns: DuckDB runs it with `LIMIT 0`, so no row is read."""
        cursor = self._connection.cursor()
        try:
            relation = cursor.sql(sql)
            if relation is None:
                raise SourceError(f"source {self.name!r}: the query returns no rows (use a SELECT statement)")
            schema: pa.Schema = relation.limit(0).to_arrow_table().schema
            return schema
        except duckdb.Error as exc:
            raise _query_failed(self.name, exc) from None
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._connection.close()
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)


def _private_spill_dir() -> Path:
    # A large query spills raw rows to disk: into a folder only this user can read (mkdtemp makes it 0700),
    # removed when the source is closed, rather than DuckDB's default next to the database or in the cwd.
    return Path(tempfile.mkdtemp(prefix="ttsync-source-"))


def _arrow_reader(relation: Any, batch_rows: int) -> pa.RecordBatchReader:
    # A relation streams Arrow without the extra copy a DB-API result makes. DuckDB 2 names the method
    # `to_arrow_reader`; 1.x called it `record_batch`.
    method = getattr(relation, "to_arrow_reader", None) or relation.record_batch
    reader: pa.RecordBatchReader = method(batch_rows)
    return reader
