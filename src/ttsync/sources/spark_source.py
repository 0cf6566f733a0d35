"""The `spark` source kind: Spark SQL over a SparkSession's tables, or over Parquet registered as a table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ttsync.config import models
from ttsync.redact import redact_text
from ttsync.sources.base import (
    DEFAULT_BATCH_ROWS,
    SOURCE_NOT_FOUND,
    SOURCE_QUERY_FAILED,
    Source,
    SourceError,
)
from ttsync.sources.guard import allowed_roots, check_read_only_query, check_source_path
from ttsync.sources.spark_session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def open_spark_source(source: models.Source, root: Path) -> SparkSource:
    """Start (or reuse) the SparkSession of `source` and register its `path`, if any, as a table.

    `path` is Parquet: a local file or folder (inside the workspace, like other sources' files) or any
    Hadoop-compatible URI (`s3a://`, `abfss://`, `hdfs://`, ...), shown to queries as `table` (default: the
    source name)."""
    session = spark_session(source.master, source.spark_conf)
    if source.path:
        location = source.path
        if "://" not in location:
            local = check_source_path(source.name, source.resolved_path(root), allowed_roots(root))
            if not local.exists():
                raise SourceError(
                    f"source {source.name!r}: Parquet path {local} does not exist; fix `path`",
                    resolution_key=SOURCE_NOT_FOUND,
                )
            location = str(local)
        try:
            session.read.parquet(location).createOrReplaceTempView(source.table_name())
        except Exception as exc:  # Spark raises its own exception classes (AnalysisException, Py4JJavaError)
            raise _failed(source.name, exc) from None
    return SparkSource(source.name, session)


def check_spark_select(name: str, sql: str) -> None:
    """Raise `SourceError` unless `sql` is one read-only query in Spark SQL (sqlglot's Spark parser): Spark
    runs DDL and INSERT as soon as `spark.sql` is called, so nothing else may reach it."""
    try:
        statements = sqlglot.parse(sql, read="spark")
    except sqlglot.errors.ParseError as exc:
        message = redact_text(str(exc).split("\n", 1)[0], quoted=True)
        raise SourceError(f"source {name!r}: the query failed: {message}", database_message=message) from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise SourceError(
            f"source {name!r}: the query is refused: ttsync runs one read-only SELECT per source query; keep "
            "only the SELECT in the orchestration's `query`"
        )
    check_read_only_query(name, sql, unparsable_ok=True)  # DuckDB's parser too, where it can read the query


def _failed(name: str, exc: BaseException) -> SourceError:
    message = redact_text(str(exc).split("\n", 1)[0], quoted=True)
    key = (
        SOURCE_NOT_FOUND
        if "TABLE_OR_VIEW_NOT_FOUND" in message or "PATH_NOT_FOUND" in message
        else SOURCE_QUERY_FAILED
    )
    return SourceError(
        f"source {name!r}: the query failed: {message}", resolution_key=key, database_message=message
    )


class SparkSource(Source):
    """Runs Spark SQL. `dataframe(sql)` is the scale-out entry (identity and diff on the executors); `stream`
    brings rows to the driver one partition at a time (previews, small results)."""

    def __init__(self, name: str, session: SparkSession) -> None:
        self.name = name
        self.session = session

    def dataframe(self, sql: str) -> DataFrame:
        """The query as a Spark DataFrame (lazy: nothing runs yet). Only one read-only SELECT is accepted."""
        check_spark_select(self.name, sql)
        try:
            return self.session.sql(sql)
        except Exception as exc:
            raise _failed(self.name, exc) from None

    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Rows of `sql` as Arrow batches, fetched one partition at a time (never the whole result at once)."""
        frame = self.dataframe(sql)
        schema = self.schema(sql)
        assert schema is not None
        rows: list[Any] = []
        try:
            for row in frame.toLocalIterator(prefetchPartitions=False):
                rows.append(row)
                if len(rows) >= batch_rows:
                    yield _batch(rows, schema)
                    rows = []
        except SourceError:
            raise
        except Exception as exc:
            raise _failed(self.name, exc) from None
        if rows:
            yield _batch(rows, schema)

    def columns(self, sql: str) -> list[str]:
        """Column names (Spark analyses the query without running it)."""
        return list(self.dataframe(sql).columns)

    def schema(self, sql: str) -> pa.Schema | None:
        """Arrow types of the query's columns, from Spark's analysis (no rows read)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        schema: pa.Schema = to_arrow_schema(self.dataframe(sql).schema)
        return schema

    def close(self) -> None:
        """Nothing to release: the SparkSession lives for the process (starting one takes seconds)."""


def _batch(rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [pa.array(list(values), type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
