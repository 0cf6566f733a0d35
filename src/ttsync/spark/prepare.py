"""Identity on the Spark executors: the same `Preparer`, one per partition, through `mapInArrow`.

Each partition's rows go through `ttsync.identity.Preparer` exactly as on one machine (the compiled kernel
where the executors have it, the DuckDB/Arrow fallback elsewhere), so every digest and reason code is the local
path's. Executors write identifiers, rejections and one match report per partition as Parquet; the driver then
streams those files batch by batch into the run folder's usual files (`ids.parquet`, `digests.parquet`,
`rejects.parquet`): it never holds the whole set. Reports are summed (`MatchReport.merge`); duplicates, which
may cross partitions, are counted by Spark over the whole set.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.identity import ColumnSpec, MatchReport, Preparer
from ttsync.identity.digests import KEY_COLUMNS
from ttsync.identity.report import AutoDecision
from ttsync.identity.rowkeys import KeyHasher
from ttsync.sync.prepare import (
    DIGESTS_SCHEMA,
    IDS_SCHEMA,
    REJECTS_SCHEMA,
    ROW_KEY_FIELD,
    PreparedOutput,
    _digest_writer,
    _with_string_key,
    footer_metadata,
    ids_batch,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# One output schema for everything a partition produces; `part` says which of ids, rejects, report a row is.
# Spark has no unsigned 64-bit type: digest words travel as int64 (the same bits) and are read back as uint64.
PART_SCHEMA = pa.schema(
    [
        ("part", pa.string()),
        ("row_key", pa.string()),
        ("id_schema", pa.string()),
        *[(k, pa.int64()) for k in KEY_COLUMNS],
        ("column", pa.string()),
        ("reason", pa.string()),
        ("report", pa.string()),
    ]
)
SPARK_SCHEMA = "part string, row_key string, id_schema string, k1 long, k2 long, k3 long, k4 long, column string, reason string, report string"
AUTO_SAMPLE = 1000
PARTS_ROW_GROUP_BYTES = 4 * 2**20


def identity_partitions(
    specs: Sequence[ColumnSpec], key_column: str, hasher: KeyHasher, decided: Sequence[AutoDecision] = ()
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The `mapInArrow` function: one Preparer per partition; rows of `PART_SCHEMA` out (ids, rejects, and a
    last row with the partition's match report as JSON). `hasher` replaces identifier-looking row keys."""
    specs = list(specs)
    decided = list(decided)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        rows = 0
        with Preparer(specs, key_column=ROW_KEY_FIELD, workers=1, decided=decided) as preparer:
            for raw in batches:
                batch, missing = _with_string_key(raw, key_column, hasher, first_row=rows)
                if missing.num_rows:  # positions are per partition: name the partition too
                    keys = pc.replace_substring(missing.column("row_key"), "#row", f"#p{partition}row")
                    yield _rejects(missing.set_column(0, "row_key", keys))
                prepared = preparer.process(batch)
                if prepared.ids.num_rows:
                    yield _ids(prepared.ids)
                if prepared.rejects.num_rows:
                    yield _rejects(prepared.rejects.select(REJECTS_SCHEMA.names))
                rows += raw.num_rows
        summary = {"rows": rows, "report": preparer.report().to_dict()}
        yield _row({"part": ["report"], "report": [json.dumps(summary)]})

    return run


def _row(columns: dict[str, list[object] | pa.Array]) -> pa.RecordBatch:
    n = len(next(iter(columns.values())))
    return pa.record_batch(
        [pc.cast(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type) for f in PART_SCHEMA],
        schema=PART_SCHEMA,
    )


def _ids(ids: pa.RecordBatch) -> pa.RecordBatch:
    stored = ids_batch(ids)
    columns: dict[str, list[object] | pa.Array] = {
        "part": pa.repeat(pa.scalar("id"), stored.num_rows),
        "row_key": stored.column("row_key"),
        "id_schema": stored.column("id_schema"),
    }
    columns |= {k: stored.column(k).view(pa.int64()) for k in KEY_COLUMNS}
    return _row(columns)


def _rejects(rejects: pa.RecordBatch) -> pa.RecordBatch:
    return _row(
        {
            "part": pa.repeat(pa.scalar("reject"), rejects.num_rows),
            "row_key": rejects.column("row_key"),
            "column": rejects.column("column"),
            "reason": rejects.column("reason"),
        }
    )


def decide_auto(frame: DataFrame, specs: Sequence[ColumnSpec], key_column: str | None) -> list[AutoDecision]:
    """Decide every `auto` column once, on the driver, from its first non-empty values (a sample of at most
    1,000 per column: the local rule), so all partitions read a column the same way. Rows without a key are
    left out (`key_column` None: every row counts)."""
    from pyspark.sql import functions as F

    decisions: list[AutoDecision] = []
    for spec in specs:
        if spec.hash_state != "auto":
            continue
        value = F.col(f"`{spec.column}`").cast("string")
        # Rows without a key are rejected before anything else, as on the local path.
        keyed = frame if key_column is None else frame.where(F.col(f"`{key_column}`").isNotNull())
        sample = keyed.select(value.alias("v")).where(F.trim(value) != "").limit(AUTO_SAMPLE)
        values = [row["v"] for row in sample.collect()]  # at most 1,000 values, in memory only
        batch = pa.record_batch(
            {
                "k": pa.array(range(len(values)), pa.int64()).cast(pa.string()),
                "v": pa.array(values, pa.string()),
            }
        )
        with Preparer(
            [ColumnSpec(column="v", kind=spec.kind, hash_state="auto", delimiter=spec.delimiter)],
            key_column="k",
            workers=1,
        ) as probe:
            probe.process(batch)
            for decision in probe.report().auto:
                decisions.append(
                    AutoDecision(column=spec.column, decided=decision.decided, sampled=decision.sampled)
                )
    return decisions


def prepare_with_spark(
    frame: DataFrame,
    *,
    specs: Sequence[ColumnSpec],
    key_column: str,
    out_dir: Path,
    key_hasher: KeyHasher,
) -> PreparedOutput:
    """Run the identity rules on the executors over `frame` and write the run folder's prepared files.

    The executors' output goes to `out_dir/spark` (Parquet partitions); the driver then streams it into
    `ids.parquet`, `digests.parquet` and `rejects.parquet` (the layout `prepare_to_parquet` writes), with the
    merged match report in their footers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    decided = decide_auto(frame, specs, key_column)
    parts_dir = out_dir / "spark"
    shutil.rmtree(parts_dir, ignore_errors=True)
    # The key leaves the driver inside the task: on a cluster, enable spark.network.crypto (docs/scale.md).
    mapped = frame.mapInArrow(identity_partitions(specs, key_column, key_hasher, decided), SPARK_SCHEMA)
    # Small row groups: the driver reads them one at a time, so its memory does not grow with the input.
    mapped.write.mode("overwrite").option("parquet.block.size", PARTS_ROW_GROUP_BYTES).parquet(str(parts_dir))
    duplicates = count_duplicates(frame.sparkSession.read.parquet(str(parts_dir)))
    reports: list[MatchReport] = []
    rows = 0
    for table in _parts(parts_dir, "report", ["report"]):
        for text in table.column("report").to_pylist():
            summary = json.loads(text)
            rows += int(summary["rows"])
            reports.append(MatchReport.model_validate(summary["report"]))
    report = MatchReport.merge(reports, duplicates=duplicates)
    ids_path, digests_path = out_dir / "ids.parquet", out_dir / "digests.parquet"
    rejects_path = out_dir / "rejects.parquet"
    ids_path.unlink(missing_ok=True)  # new files: a committed snapshot may be a hard link to an earlier one
    digests_path.unlink(missing_ok=True)
    ids_written = rejects_written = 0
    with (
        _digest_writer(ids_path, IDS_SCHEMA) as ids_out,
        _digest_writer(digests_path, DIGESTS_SCHEMA) as digests_out,
        pq.ParquetWriter(rejects_path, REJECTS_SCHEMA, compression="zstd") as rejects_out,
    ):
        for table in _parts(parts_dir, "id", ["row_key", "id_schema", *KEY_COLUMNS]):
            words = [table.column(k).combine_chunks().view(pa.uint64()) for k in KEY_COLUMNS]
            stored = pa.Table.from_arrays([table.column(0), table.column(1), *words], schema=IDS_SCHEMA)
            ids_out.write_table(stored)
            digests_out.write_table(stored.select(DIGESTS_SCHEMA.names))
            ids_written += stored.num_rows
        for table in _parts(parts_dir, "reject", list(REJECTS_SCHEMA.names)):
            rejects_out.write_table(table.cast(REJECTS_SCHEMA))
            rejects_written += table.num_rows
        ids_out.add_key_value_metadata(footer_metadata(report))
        digests_out.add_key_value_metadata(footer_metadata(report))
    return PreparedOutput(
        ids_path=ids_path,
        digests_path=digests_path,
        rejects_path=rejects_path,
        rows_read=rows,
        ids_written=ids_written,
        rejects_written=rejects_written,
        report=report,
    )


def row_groups(parts_dir: Path, columns: list[str]) -> Iterator[pa.Table]:
    """`columns` of the executors' Parquet output in `parts_dir`, one row group at a time, files in name order.

    Row group by row group on purpose: measured, pyarrow's dataset scanner and `iter_batches` let the driver's
    memory grow with the input (about 30 MiB per million rows), reading row groups one by one keeps it flat."""
    for path in sorted(parts_dir.glob("*.parquet")):
        file = pq.ParquetFile(path)
        for index in range(file.num_row_groups):
            yield file.read_row_group(index, columns=columns)


def _parts(parts_dir: Path, part: str, columns: list[str]) -> Iterator[pa.Table]:
    """The rows of kind `part` in the executors' output (see `row_groups`)."""
    for table in row_groups(parts_dir, ["part", *columns]):
        selected = table.filter(pc.equal(table.column("part"), part)).drop_columns(["part"])
        del table
        if selected.num_rows:
            yield selected


def count_duplicates(parts: DataFrame) -> dict[str, int]:
    """Valid identifiers whose digest appears earlier in the whole set, per id schema (valid - distinct),
    counted by Spark across all partitions."""
    from pyspark.sql import functions as F

    ids = parts.where(F.col("part") == "id").select("id_schema", *KEY_COLUMNS)
    total = ids.groupBy("id_schema").count().withColumnRenamed("count", "n")
    distinct = ids.distinct().groupBy("id_schema").count().withColumnRenamed("count", "d")
    return {row["id_schema"]: int(row["n"] - row["d"]) for row in total.join(distinct, "id_schema").collect()}
