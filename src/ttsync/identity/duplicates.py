"""Exact duplicate counting per identifier type, in bounded memory.

Each valid identifier contributes one 64-bit key (the first 8 bytes of its digest, never anything of the
raw value) to a DuckDB table. DuckDB keeps it in memory up to `memory_limit` and spills the rest to
a private temporary directory (keys only, deleted on close), so memory does not grow with the number
of rows: 64 MB and one DuckDB thread keep a 10M-row run's peak RSS flat (bench/events.py; at 256 MB the
table and the final count's hash table added ~250 MiB at 10M rows) for ~20 % more CPU in the final count. Counts are exact up to 64-bit key collisions (probability about 3e-6 at 10 million keys).
add() may be called from several threads at once: each thread appends through its own cursor
(DuckDB appends to one table from several connections without conflicts), so the preparer's
workers record their keys themselves instead of queueing them on the main thread.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import weakref

import duckdb
import pyarrow as pa


class DuplicateCounter:
    """duplicates = keys added - distinct keys, per identifier type."""

    _names = itertools.count()

    def __init__(self, memory_limit: str = "64MB") -> None:
        self._tmp = tempfile.mkdtemp(prefix="ttsync-dupes-")
        # Removed even if close() is never called.
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
        self._con = duckdb.connect(
            config={
                "memory_limit": memory_limit,
                "temp_directory": self._tmp,
                "preserve_insertion_order": False,
                "threads": 1,
            }
        )
        self._con.execute("CREATE TABLE keys (s UTINYINT, x UBIGINT)")
        self._schemas: dict[str, int] = {}
        self._final: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._con.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def add(self, id_schema: str, keys: pa.Array) -> None:
        """Record the keys of one batch's valid identifiers of `id_schema`."""
        if len(keys) == 0:
            return
        with self._lock:
            if self._final is not None:
                raise RuntimeError("the duplicate counter is closed")
            sid = self._schemas.setdefault(id_schema, len(self._schemas))
            name = f"batch_{next(self._names)}"
        cursor = self._cursor()
        cursor.register(name, pa.table({"x": keys}))
        try:
            cursor.execute(f"INSERT INTO keys SELECT {sid}::UTINYINT, x FROM {name}")
        finally:
            cursor.unregister(name)

    def counts(self) -> dict[str, int]:
        """Duplicates per id_schema so far (after close(): the counts at close)."""
        if self._final is not None:
            return dict(self._final)
        # A grouped aggregate spills to the temporary directory when it outgrows the memory limit, where
        # count(DISTINCT x) builds one in-memory hash set of every key (it was the largest allocation of a
        # 10M-row run, and fails outright under a small limit).
        rows = self._con.execute(
            "SELECT s, sum(n - 1) FROM (SELECT s, x, count(*) AS n FROM keys GROUP BY s, x) GROUP BY s"
        ).fetchall()
        names = {sid: schema for schema, sid in self._schemas.items()}
        return {names[int(s)]: int(d) for s, d in rows}

    def close(self) -> None:
        """Keep the final counts, release DuckDB and delete the spill directory."""
        if self._final is not None:
            return
        self._final = self.counts()
        with self._lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._con.close()
        self._cleanup()
