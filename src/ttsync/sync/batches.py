"""Reading a plan's add and remove files back in fixed-size batches, in a stable order (checkpoints count
batches)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from ttsync.sqltext import sql_identifier, sql_literal

if TYPE_CHECKING:  # plan.py re-exports these functions: import the plan type for annotations only
    from ttsync.sync.plan import AudiencePlan


def iter_add_batches(
    con: duckdb.DuckDBPyConnection, plan: AudiencePlan, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Add rows in a fixed order, `batch_rows` rows at a time; one column per id schema (null = no value)."""
    cols = ", ".join(sql_identifier(s) for s in plan.id_schemas)
    reader = (
        _file_order_cursor(con)
        .sql(f"SELECT {cols} FROM read_parquet({sql_literal(plan.add_rows_path)})")
        .to_arrow_reader(batch_rows)
    )
    yield from _rebatch(reader, batch_rows)


def iter_remove_batches(
    con: duckdb.DuckDBPyConnection, plan: AudiencePlan, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Identifiers to remove, one per row, laid out like add rows (a value only in its schema's column)."""
    cols = ", ".join(
        f"CASE WHEN id_schema = {sql_literal(s)} THEN hash END AS {sql_identifier(s)}"
        for s in plan.id_schemas
    )
    reader = (
        _file_order_cursor(con)
        .sql(f"SELECT {cols} FROM read_parquet({sql_literal(plan.remove_ids_path)})")
        .to_arrow_reader(batch_rows)
    )
    yield from _rebatch(reader, batch_rows)


def _file_order_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of its own (a reader left half-read never blocks the plan's connection) that reads Parquet
    in file order: the plan files are written once, so file order is the stable batch order checkpoints
    count in, without sorting millions of rows again on every read."""
    cursor = con.cursor()
    cursor.execute("SET preserve_insertion_order = true")
    return cursor


def batch_count(rows: int, batch_rows: int) -> int:
    """How many batches `rows` rows make."""
    return (rows + batch_rows - 1) // batch_rows


def _rebatch(reader: pa.RecordBatchReader, batch_rows: int) -> Iterator[pa.RecordBatch]:
    # DuckDB may hand back smaller chunks than asked; batch boundaries must be stable for checkpoints.
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in reader:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= batch_rows:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, batch_rows), table.slice(batch_rows)
            yield head.combine_chunks().to_batches()[0]
            pending = tail.combine_chunks().to_batches() if tail.num_rows else []
            pending_rows = tail.num_rows
    if pending_rows:
        table = pa.Table.from_batches(pending).combine_chunks()
        yield table.to_batches()[0]
