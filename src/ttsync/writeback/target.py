"""Writable connections to a write-back target, limited to that target.

Sources are opened read-only and sandboxed (`ttsync.sources.guard`); write-back needs a writable connection,
so it opens its own, separate from the source's, and only to the configured target:

- DuckDB: the target file, then `lock_down` (no other file, no ATTACH, no COPY, no extensions, settings
  locked): only the already-open database is writable. The file must lie inside the workspace folder or a
  folder of `$TTSYNC_SOURCE_DIRS` (the same rule as source files).
- SQLAlchemy: a fresh engine on the target URL; ttsync only runs its own statements, schema-qualified.

Both run every statement of one write inside one transaction (`transaction()`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from ttsync.sources.guard import SOURCE_DIRS_ENV, allowed_roots, lock_down
from ttsync.workspace.errors import ConfigError
from ttsync.writeback.config import WritebackTarget

_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
INSERT_CHUNK_ROWS = 10_000
ADVISORY_LOCK_KEY = 0x7474_7379_6E63  # "ttsync": the PostgreSQL advisory lock of write-back writers


class TargetConnection(Protocol):
    """What the writer needs of a target: statements with `:name` parameters, Arrow inserts, a transaction."""

    prefix: str  # schema prefix for table names ('"ttsync".', or '' where schemas do not exist)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def insert(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int: ...

    def transaction(self) -> Any: ...

    def lock(self) -> None: ...

    def create_schema(self) -> None: ...

    def close(self) -> None: ...


class DuckDBTarget:
    """A DuckDB file opened for writing, confined to itself."""

    def __init__(self, path: Path, schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(path))
        lock_down(self._con)
        self._schema = schema
        self.prefix = f'"{schema}".'

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (`:name` parameters) and return its rows."""
        result = self._con.execute(_PARAM.sub(r"$\1", sql), dict(params) if params else None)
        return result.fetchall() if result.description else []

    def insert(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Append Arrow rows to `table`, columns matched by name."""
        before = self._count(table)
        self._con.register("ttsync_writeback_rows", data)
        try:
            self._con.execute(f"INSERT INTO {self.prefix}{table} BY NAME SELECT * FROM ttsync_writeback_rows")
        finally:
            self._con.unregister("ttsync_writeback_rows")
        return self._count(table) - before

    def _count(self, table: str) -> int:
        return int(self.execute(f"SELECT count(*) FROM {self.prefix}{table}")[0][0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def lock(self) -> None:
        """Nothing to do: a DuckDB file has one writing process at a time."""

    def create_schema(self) -> None:
        """Create the target's schema when it does not exist."""
        self.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')

    def close(self) -> None:
        """Close the connection (the file is free for other processes again)."""
        self._con.close()


class SQLAlchemyTarget:
    """A database reached by a SQLAlchemy URL (PostgreSQL, SQLite, ...)."""

    def __init__(self, url: str, schema: str) -> None:
        self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._conn = self._engine.connect()
        self._in_transaction = False
        self._schema = schema
        # SQLite has no schemas: the tables go in the main database.
        self.prefix = "" if self._engine.dialect.name == "sqlite" else f'"{schema}".'

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (`:name` parameters) and return its rows."""
        if not self._in_transaction:  # a statement outside `transaction()` commits on its own
            with self._conn.begin():
                return self._run(sql, params)
        return self._run(sql, params)

    def _run(self, sql: str, params: Mapping[str, Any] | None) -> list[tuple[Any, ...]]:
        result = self._conn.execute(sa.text(sql), dict(params or {}))
        return [tuple(row) for row in result] if result.returns_rows else []

    def insert(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Append Arrow rows to `table`: PostgreSQL's COPY with psycopg, else executemany in chunks."""
        if self._engine.dialect.driver == "psycopg":
            return self._copy(table, data)
        names = data.schema.names
        sql = sa.text(
            f"INSERT INTO {self.prefix}{table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
        )
        batches = data.to_batches(INSERT_CHUNK_ROWS) if isinstance(data, pa.Table) else data
        written = 0
        for batch in batches:
            rows = batch.to_pylist()
            if rows:
                self._conn.execute(sql, rows)
                written += len(rows)
        return written

    def _copy(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        # COPY is ~10x faster than INSERTs for a big audience's row outcomes; it runs on the same DBAPI
        # connection, so inside the same transaction as the DELETE before it.
        columns = ", ".join(data.schema.names)
        batches = data.to_batches(INSERT_CHUNK_ROWS) if isinstance(data, pa.Table) else data
        written = 0
        driver = self._conn.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {self.prefix}{table} ({columns}) FROM STDIN") as copy,
        ):
            for batch in batches:
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    copy.write_row(row)
                written += batch.num_rows
        return written

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        with self._conn.begin():
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def lock(self) -> None:
        """Serialize writers of this target until the transaction ends (PostgreSQL advisory lock): two
        workflows writing back at once must not both create or migrate the tables."""
        if self._engine.dialect.name == "postgresql":
            self._run("SELECT pg_advisory_xact_lock(:key)", {"key": ADVISORY_LOCK_KEY})

    def create_schema(self) -> None:
        """Create the target's schema when it does not exist (call holding `lock`: concurrent CREATE SCHEMA
        IF NOT EXISTS can fail in PostgreSQL)."""
        if self.prefix:
            self.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')

    def close(self) -> None:
        """Close the connection and the engine."""
        self._conn.close()
        self._engine.dispose()


def open_target(target: WritebackTarget, root: Path) -> TargetConnection:
    """A writable connection to `target` only (a DuckDB path must lie inside the workspace folder or
    `$TTSYNC_SOURCE_DIRS`)."""
    if target.kind == "duckdb":
        path = Path(target.location)
        roots = allowed_roots(root)
        resolved = path.resolve()  # symlinks followed, as for source files
        if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
            raise ConfigError(
                f"write-back target {path} is outside the workspace folder, refused: set `writeback.path` to "
                f"a file inside {roots[0]}, or allow its folder with {SOURCE_DIRS_ENV}=/path/to/folder"
            )
        return DuckDBTarget(resolved, target.schema)
    return SQLAlchemyTarget(target.location, target.schema)
