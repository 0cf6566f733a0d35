"""Prepare stage: stream warehouse batches through the identity rules into Parquet files of hashes.

Memory stays bounded: one batch at a time goes in, and prepared identifiers and rejections are appended to
Parquet writers. Only hashes, row keys and reason codes are written; raw values never leave this function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.identity import ColumnSpec, MatchReport, Preparer
from ttsync.workspace.errors import ConfigError

IDS_SCHEMA = pa.schema([("row_key", pa.string()), ("id_schema", pa.string()), ("hash", pa.string())])
REJECTS_SCHEMA = pa.schema([("row_key", pa.string()), ("column", pa.string()), ("reason", pa.string())])


@dataclass(frozen=True)
class PreparedOutput:
    """Where the prepared identifiers and rejections were written, and the match-quality report."""

    ids_path: Path
    rejects_path: Path
    rows_read: int
    ids_written: int
    rejects_written: int
    report: MatchReport


def prepare_to_parquet(
    batches: Iterable[pa.RecordBatch],
    *,
    specs: Sequence[ColumnSpec],
    key_column: str,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> PreparedOutput:
    """Run the identity rules over every batch; write `ids.parquet` and `rejects.parquet` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids_path, rejects_path = out_dir / "ids.parquet", out_dir / "rejects.parquet"
    rows = ids_written = rejects_written = 0
    with (
        Preparer(list(specs), key_column=key_column) as preparer,  # owns a thread pool and DuckDB connections
        pq.ParquetWriter(ids_path, IDS_SCHEMA, compression="zstd") as ids_out,
        pq.ParquetWriter(rejects_path, REJECTS_SCHEMA, compression="zstd") as rejects_out,
    ):
        for raw_batch in batches:
            batch, missing_keys = _with_string_key(raw_batch, key_column, first_row=rows)
            if missing_keys.num_rows:
                rejects_out.write_batch(missing_keys)
                rejects_written += missing_keys.num_rows
            prepared = preparer.process(batch)
            if prepared.ids.num_rows:
                ids_out.write_batch(prepared.ids.select(IDS_SCHEMA.names).cast(IDS_SCHEMA))
                ids_written += prepared.ids.num_rows
            if prepared.rejects.num_rows:
                rejects_out.write_batch(prepared.rejects.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA))
                rejects_written += prepared.rejects.num_rows
            rows += raw_batch.num_rows
            if progress is not None:
                progress(raw_batch.num_rows)
    return PreparedOutput(
        ids_path=ids_path,
        rejects_path=rejects_path,
        rows_read=rows,
        ids_written=ids_written,
        rejects_written=rejects_written,
        report=preparer.report(),
    )


def _with_string_key(
    batch: pa.RecordBatch, key_column: str, *, first_row: int
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The batch with a string key column, minus rows without a key (returned as rejections by position)."""
    index = batch.schema.get_field_index(key_column)
    if index < 0:
        raise ConfigError(
            f"key column {key_column!r} is not in the query's result; set `key_column` on the orchestration to "
            f"one of: {', '.join(batch.schema.names)}"
        )
    column = batch.column(index)
    missing = pa.RecordBatch.from_pylist([], schema=REJECTS_SCHEMA)
    if column.null_count:
        # A row without a key cannot be traced or diffed: reject it by its position in the result.
        positions = pc.indices_nonzero(pc.is_null(column)).to_pylist()
        missing = pa.RecordBatch.from_pydict(
            {
                "row_key": [f"#row{first_row + p}" for p in positions],
                "column": [key_column] * len(positions),
                "reason": ["missing_key"] * len(positions),
            },
            schema=REJECTS_SCHEMA,
        )
        batch = batch.filter(pc.is_valid(column))
        column = batch.column(index)
    if not pa.types.is_string(column.type):
        batch = batch.set_column(index, key_column, pc.cast(column, pa.string()))
    return batch, missing
