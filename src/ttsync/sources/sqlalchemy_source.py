"""Sources reached through a SQLAlchemy URL (PostgreSQL, SQLite, any dialect with a driver installed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ttsync.redact import redact_text
from ttsync.sources.base import (
    DEFAULT_BATCH_ROWS,
    SOURCE_CONFIGURATION,
    Source,
    SourceError,
    classify_database_message,
)
from ttsync.sources.guard import check_read_only_query

# Statements that make the connection's transactions read-only, per dialect: the database itself then refuses
# any write, whatever the query text (a second line of defence behind the one-SELECT check).
_READ_ONLY: dict[str, str] = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "sqlite": "PRAGMA query_only = ON",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}


def _describe(exc: BaseException) -> str:
    # The driver's own message (without SQLAlchemy's appended SQL and parameters), quoted literals and
    # identifier-looking text redacted: drivers quote offending values in data errors.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        message = str(exc.orig).strip()
    else:
        message = str(exc).split("\n[SQL:", 1)[0].strip()
    return redact_text(message.split("\n(Background on this error", 1)[0], quoted=True)


def _failed(name: str, exc: SQLAlchemyError | pa.ArrowException, *, connecting: bool) -> SourceError:
    """The `SourceError` of a failed connection or query, with the database's message and resolution."""
    message = _describe(exc)
    key = classify_database_message(
        f"{type(getattr(exc, 'orig', None)).__name__} {message}", connecting=connecting
    )
    what = "cannot connect" if connecting else "the query failed"
    return SourceError(f"source {name!r}: {what}: {message}", resolution_key=key, database_message=message)


class SQLAlchemySource(Source):
    """Streams with server-side cursors (`stream_results` + `yield_per`), one Arrow batch per chunk."""

    def __init__(self, name: str, engine: sa.Engine) -> None:
        self.name = name
        self._engine = engine

    @classmethod
    def open(cls, name: str, url: str) -> SQLAlchemySource:
        """Create the engine for `url` (the connection is made lazily by the first query)."""
        try:
            parsed = sa.make_url(url)
        except ArgumentError:
            raise SourceError(
                f"source {name!r}: the URL is not a SQLAlchemy URL; expected dialect+driver://user@host/db, "
                "for example postgresql+psycopg://analyst@db.internal/warehouse",
                resolution_key=SOURCE_CONFIGURATION,
            ) from None
        try:
            engine = sa.create_engine(parsed)
        except (NoSuchModuleError, ImportError):
            raise SourceError(
                f"source {name!r}: no SQLAlchemy driver for {parsed.drivername!r}; install it "
                "(for PostgreSQL: pip install 'ttsync[postgres]')",
                resolution_key=SOURCE_CONFIGURATION,
            ) from None
        read_only = _READ_ONLY.get(engine.dialect.name)
        if read_only is not None:

            @event.listens_for(engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute(read_only)
                finally:
                    cursor.close()
                if engine.dialect.name == "postgresql":
                    dbapi_connection.commit()  # psycopg opened a transaction for the SET

        return cls(name, engine)

    @property
    def read_only_enforced(self) -> bool:
        """Whether the database itself refuses writes on this source's connections."""
        return self._engine.dialect.name in _READ_ONLY

    def _check(self, sql: str) -> None:
        # One SELECT, by DuckDB's parser (close to PostgreSQL's grammar). A query in another dialect that it
        # cannot parse runs only where the database enforces read-only transactions.
        check_read_only_query(self.name, sql, unparsable_ok=self.read_only_enforced)

    def _connect(self) -> sa.Connection:
        """A connection; a failure here is the server's (refused, unknown host, login), not the query's."""
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            raise _failed(self.name, exc, connecting=True) from None

    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Run `sql` and yield one record batch per `batch_rows` rows fetched from a server-side cursor."""
        self._check(sql)
        with self._connect() as conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                    sa.text(sql)
                )
                names = list(result.keys())
                schema: pa.Schema | None = None
                for chunk in result.partitions(batch_rows):
                    batch = _to_batch(names, chunk, schema)
                    schema = _widen(schema, batch.schema)
                    yield batch
            except (SQLAlchemyError, pa.ArrowException) as exc:
                raise _failed(self.name, exc, connecting=False) from None

    def columns(self, sql: str) -> list[str]:
        """Column names of `sql` (wrapped in `LIMIT 0`, so no rows are fetched)."""
        self._check(sql)
        with self._connect() as conn:
            try:
                result = conn.execute(sa.text(f"SELECT * FROM ({sql}) AS ttsync_columns LIMIT 0"))
                return list(result.keys())
            except SQLAlchemyError as exc:
                raise _failed(self.name, exc, connecting=False) from None

    def close(self) -> None:
        """Dispose of the engine's pool."""
        self._engine.dispose()


def _to_batch(names: list[str], rows: Sequence[Any], schema: pa.Schema | None) -> pa.RecordBatch:
    # Column-wise conversion of one chunk; types follow the first chunk that shows a non-null value, so
    # later chunks are cast to the same schema (a column that is NULL in one chunk stays typed).
    arrays = []
    for index, _name in enumerate(names):
        values = [row[index] for row in rows]
        target = schema.field(index).type if schema is not None else None
        if target is not None and not pa.types.is_null(target):
            try:
                arrays.append(pa.array(values, type=target))
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # the column changed type (e.g. int then float): keep the inferred type
        arrays.append(pa.array(values))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _widen(current: pa.Schema | None, seen: pa.Schema) -> pa.Schema:
    if current is None:
        return seen
    fields = [
        seen.field(i) if pa.types.is_null(current.field(i).type) else current.field(i)
        for i in range(len(current))
    ]
    return pa.schema(fields)
