"""Staging: prepared rows go to Parquet parts in the run folder; DuckDB orders them event by event.

Rows of one event (same `event` and `event_id`) may be anywhere in the query result, so grouping needs the
whole result; DuckDB sorts it out of core over the parts with a memory limit, instead of holding every row
in Python, and hands the rows back with the rows of each event adjacent (`payload.EventAssembler` then
builds one event per run of rows). The parts hold hashes (never raw emails or phones) and are deleted when
the run ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.events.validate import PreparedRows

IDS_SCHEMA: Final = pa.schema([("row_key", pa.string()), ("id_schema", pa.string()), ("hash", pa.string())])


class Stage:
    """Parquet parts of one run (`<run_dir>/stage/`), written batch by batch, then grouped into events."""

    def __init__(self, run_dir: Path, *, memory_limit: str = "400MB", threads: int = 2) -> None:
        self.dir = run_dir / "stage"
        if self.dir.exists():
            shutil.rmtree(self.dir)  # a previous attempt of this run: start over, the ledger is the memory
        self.dir.mkdir(parents=True)
        self._parts = 0
        self._rows = 0
        self.memory_limit = memory_limit
        self.threads = threads

    @property
    def rows(self) -> int:
        """Rows staged so far."""
        return self._rows

    def add(self, prepared: PreparedRows) -> None:
        """Write one prepared batch (rows and identifier hashes) as a part."""
        if prepared.rows.num_rows == 0:
            return
        name = f"{self._parts:06d}.parquet"
        pq.write_table(pa.Table.from_batches([prepared.rows]), self.dir / f"rows-{name}", compression="zstd")
        ids = prepared.ids.select(["row_key", "id_schema", "hash"]).cast(IDS_SCHEMA)
        pq.write_table(pa.Table.from_batches([ids], schema=IDS_SCHEMA), self.dir / f"ids-{name}")
        self._parts += 1
        self._rows += prepared.rows.num_rows

    def rows_by_event(self, chunk_rows: int = 20_000) -> Iterator[pa.RecordBatch]:
        """Staged rows, the rows of each event adjacent (see `events_sql` for the order and columns)."""
        if self._parts == 0:
            return
        con = duckdb.connect(config={"memory_limit": self.memory_limit, "threads": self.threads})
        try:
            spill = self.dir / "duckdb_tmp"
            spill.mkdir(exist_ok=True)
            con.execute(f"SET temp_directory = '{_q(spill)}'")
            rows_glob = _q(self.dir / "rows-*.parquet")
            ids_glob = _q(self.dir / "ids-*.parquet")
            reader = con.sql(events_sql(rows_glob, ids_glob)).to_arrow_reader(chunk_rows)
            yield from reader
        finally:
            con.close()

    def cleanup(self) -> None:
        """Delete the parts (they hold hashes; nothing needs them after the run)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def events_sql(rows_glob: str, ids_glob: str) -> str:
    """The ordering query: every staged row with its identifier hashes, the rows of each event adjacent.

    Rows come ordered by (event, event_id, seq): an event's rows are consecutive and in query order. The
    output is flat (no list or struct columns: exporting nested values to Arrow is several times slower than
    flat ones); `emails` / `phones` hold the row's hashes joined with commas. A row key used twice gets
    the reason `duplicate_row_key` (its outcomes could not be told apart).
    """
    return f"""
WITH keyed AS (
    SELECT * REPLACE (
        CASE WHEN reason IS NULL AND count(*) OVER (PARTITION BY row_key) > 1
             THEN 'duplicate_row_key' ELSE reason END AS reason)
    FROM read_parquet('{rows_glob}')
),
idagg AS (
    SELECT row_key,
           string_agg(hash, ',') FILTER (WHERE id_schema = 'EMAIL_SHA256') AS emails,
           string_agg(hash, ',') FILTER (WHERE id_schema = 'PHONE_SHA256') AS phones
    FROM read_parquet('{ids_glob}')
    GROUP BY row_key
)
SELECT k.*, i.emails, i.phones
FROM keyed k LEFT JOIN idagg i USING (row_key)
ORDER BY k.event, k.event_id, k.seq
"""


def _q(path: Path) -> str:
    return str(path).replace("'", "''")
