"""Staging: prepared rows go to Parquet parts in the run folder; DuckDB groups them into events.

Rows of one event (same `event` and `event_id`) may be anywhere in the query result, so grouping needs the
whole result; DuckDB groups it out of core over the parts with a memory limit, instead of holding every row
in Python, and hands back one row per event with the event's JSON text (`eventsql.events_sql`). The parts
hold hashes (never raw emails or phones) and are deleted when the run ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.events.eventsql import OPTIONAL_COLUMNS, events_sql
from ttsync.events.validate import PreparedRows
from ttsync.identity.spec import id_schema_for
from ttsync.sqltext import sql_literal

# Identity's id_schema of the hashes the payload sends, by the staged column that holds them.
ID_SCHEMAS: Final = {"emails": id_schema_for("email", "sha256"), "phones": id_schema_for("phone", "sha256")}


class Stage:
    """Parquet parts of one run (`<run_dir>/stage/`), written batch by batch, then grouped into events."""

    def __init__(self, run_dir: Path, *, memory_limit: str = "400MB", threads: int = 2) -> None:
        self.dir = run_dir / "stage"
        if self.dir.exists():
            shutil.rmtree(self.dir)  # a previous attempt of this run: start over, the ledger is the memory
        self.dir.mkdir(parents=True)
        self._parts = 0
        self._rows = 0
        self._present: set[str] = set()  # optional columns with a value in some staged row
        self.memory_limit = memory_limit
        self.threads = threads

    @property
    def rows(self) -> int:
        """Rows staged so far."""
        return self._rows

    def add(self, prepared: PreparedRows) -> None:
        """Write one prepared batch as a part: its rows, each with its email and phone hashes."""
        rows = prepared.rows
        if rows.num_rows == 0:
            return
        self._present.update(
            name for name in OPTIONAL_COLUMNS if rows.column(name).null_count < rows.num_rows
        )
        table = staged_table(prepared)
        pq.write_table(table, self.dir / f"rows-{self._parts:06d}.parquet", compression="zstd")
        self._parts += 1
        self._rows += rows.num_rows

    def rows_by_event(self, chunk_rows: int = 20_000) -> Iterator[pa.RecordBatch]:
        """One row per event (columns `eventsql.EVENT_COLUMNS`), `chunk_rows` events per batch."""
        if self._parts == 0:
            return
        con = duckdb.connect(config={"memory_limit": self.memory_limit, "threads": self.threads})
        try:
            spill = self.dir / "duckdb_tmp"
            spill.mkdir(exist_ok=True)
            con.execute(f"SET temp_directory = {sql_literal(spill)}")
            reader = con.sql(events_sql(str(self.dir / "rows-*.parquet"), self._present)).to_arrow_reader(
                chunk_rows
            )
            yield from reader
        finally:
            con.close()

    def cleanup(self) -> None:
        """Delete the parts (they hold hashes; nothing needs them after the run)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def staged_table(prepared: PreparedRows) -> pa.Table:
    """One prepared batch as the stage stores it: its rows, each with its email and phone hashes (comma-joined
    in columns `emails` and `phones`). Spark's executors stage rows with it too (ttsync.spark.events)."""
    columns = [_hashes_per_row(prepared.ids, prepared.rows.column("seq"), s) for s in ID_SCHEMAS.values()]
    return (
        pa.Table.from_batches([prepared.rows])
        .append_column(pa.field("emails", pa.string()), columns[0])
        .append_column(pa.field("phones", pa.string()), columns[1])
    )


def _hashes_per_row(ids: pa.RecordBatch, seq: pa.Array, id_schema: str) -> pa.Array:
    """For each row, its hashes of one identifier type joined with commas; null without any.

    Identity returns (row_key, id_schema, hash) rows keyed by the row's `seq` (see `PreparedRows`), with any
    number of hashes per row (a cell may hold several emails); the grouping query wants them on the row.
    """
    n = len(seq)
    of_type = ids.filter(pc.equal(ids.column("id_schema"), id_schema))
    if of_type.num_rows == 0:
        return pa.nulls(n, pa.string())
    first = seq[0].as_py() if n else 0
    positions = pc.subtract(pc.cast(of_type.column("row_key"), pa.int64()), first)
    hashes = of_type.column("hash").cast(pa.string())
    if pc.count_distinct(positions).as_py() < len(positions):
        # Some row has several hashes of this type (the rare case): join them per row.
        grouped = (
            pa.table({"position": positions, "hash": hashes})
            .group_by("position", use_threads=False)
            .aggregate([("hash", "list")])
        )
        positions = grouped.column("position").combine_chunks()
        hashes = pc.binary_join(grouped.column("hash_list"), ",").combine_chunks()
    at = pc.index_in(pc.subtract(seq, first), value_set=positions)  # seq runs without gaps in a batch
    return pc.take(hashes, at)
