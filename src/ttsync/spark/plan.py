"""The audience diff in Spark: the new set against the snapshot by digest words, adds and removes as Parquet.

Same inputs and outputs as `ttsync.sync.plan.plan_audience` (DuckDB on one machine), computed by Spark:
the prepared identifiers (the executors' Parquet partitions, `ttsync.spark.prepare`) ⟗ the snapshot (a Parquet
file or any Hadoop-compatible URI) on `id_schema` and the four 64-bit digest words. Adds (one row per person
and identifier slot, hex per id schema) and removes (hex) are written by the executors as Parquet partitions;
the uploader reads them batch by batch in file order (`plan.iter_add_batches`), so the driver never holds the
set. The snapshot is replaced only by the workflow's `commit` task, after TikTok confirmed every batch.

Digest words are unsigned 64-bit integers in ttsync's files; Spark has no unsigned type (it reads them as
DECIMAL(20,0)) and carries them as BIGINT with the same bits.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ttsync.identity.digests import KEY_COLUMNS
from ttsync.sync.plan import AudiencePlan, SyncMode
from ttsync.sync.prepare import read_footer
from ttsync.sync.snapshot import distinct_ids

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_TWO_64 = 18446744073709551616
_TWO_63 = 9223372036854775808


def _signed(column: str) -> Column:
    """A digest word as Spark's BIGINT (same 64 bits), from BIGINT or from DECIMAL(20,0) (an unsigned word)."""
    from pyspark.sql import functions as F

    # Literals as DECIMAL: 2^63 does not fit a BIGINT literal.
    big = f"CAST('{_TWO_63}' AS DECIMAL(20, 0))"
    wrap = f"CAST('{_TWO_64}' AS DECIMAL(21, 0))"
    sql = f"CASE WHEN `{column}` >= {big} THEN CAST(`{column}` - {wrap} AS BIGINT) ELSE CAST(`{column}` AS BIGINT) END"
    return F.expr(sql).alias(column)


def _hex_sql() -> str:
    """Spark SQL for the lowercase hex digest of k1..k4 (hex() of a BIGINT prints its 64 bits unsigned)."""
    word = "lpad(hex({}), 16, '0')"
    head = " || ".join(word.format(k) for k in ("k1", "k2"))
    tail = " || ".join(word.format(k) for k in ("k3", "k4"))
    return f"lower({head} || coalesce({tail}, ''))"


def read_words(session: SparkSession, location: str) -> DataFrame:
    """(id_schema, k1..k4 as BIGINT) of a snapshot or prepared digests file written by ttsync."""
    frame = session.read.parquet(location)
    return frame.select("id_schema", *(_signed(k) for k in KEY_COLUMNS))


def plan_in_spark(
    session: SparkSession,
    *,
    prepared: DataFrame,
    digests_path: Path,
    snapshot: Path | str | None,
    id_schemas: Sequence[str],
    mode: SyncMode,
    work_dir: Path,
) -> AudiencePlan:
    """Adds and removes of one audience, computed by Spark (see the module docstring).

    `prepared`: row_key, id_schema, k1..k4 (BIGINT) of the new set; `digests_path`: the prepare stage's
    digests-only file of the same set (the snapshot to be, and its footer's counts). `snapshot`: a local file,
    or the URI of a snapshot version on Spark's file system (`ttsync.spark.snapshot`)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    schemas = tuple(id_schemas)
    if not schemas:
        raise ValueError("at least one id schema is required")
    work_dir.mkdir(parents=True, exist_ok=True)
    missing = snapshot is None or (isinstance(snapshot, Path) and not snapshot.exists())
    full_upload = mode in (SyncMode.CREATE, SyncMode.REPLACE) or missing
    words = ["id_schema", *KEY_COLUMNS]
    current = prepared.where(F.col("id_schema").isin(list(schemas)) & F.col("k1").isNotNull())
    # Null-safe equality on k3/k4: an MD5 digest has only two words.
    if full_upload:
        added = current
        removed = None
        previous_ids = 0
    else:
        assert snapshot is not None
        old = read_words(session, str(snapshot)).where(F.col("id_schema").isin(list(schemas))).distinct()
        same = [current[c].eqNullSafe(old[c]) for c in words]
        added = current.join(old, on=same, how="left_anti")
        if mode is SyncMode.APPEND:
            removed = None
        else:
            new_words = current.select(*words).distinct()
            again = [old[c].eqNullSafe(new_words[c]) for c in words]
            removed = old.join(new_words, on=again, how="left_anti")
        previous_ids = distinct_ids(snapshot, schemas) if isinstance(snapshot, Path) else old.count()
    # One owner row key per identifier: two customers sharing an email must not send it twice.
    owners = added.groupBy(*words).agg(F.min("row_key").alias("row_key"))
    owners_dir = _write(owners, work_dir / "owners")
    owners = session.read.parquet(str(owners_dir)).withColumn("hash", F.expr(_hex_sql()))
    if len(schemas) == 1:
        add_rows = owners.select("row_key", F.lit(1).alias("slot"), F.col("hash").alias(schemas[0]))
    else:
        # A person with two emails and one phone becomes two rows [e1, p1] and [e2, null], aligned to id_schema.
        slot = F.row_number().over(Window.partitionBy("row_key", "id_schema").orderBy("hash"))
        numbered = owners.withColumn("slot", slot)
        pivot = [F.max(F.when(F.col("id_schema") == s, F.col("hash"))).alias(s) for s in schemas]
        add_rows = numbered.groupBy("row_key", "slot").agg(*pivot)
    add_dir = _write(add_rows, work_dir / "add_rows")
    remove_dir = work_dir / "remove_ids"
    if removed is None:
        removed = session.createDataFrame([], "id_schema string, k1 long, k2 long, k3 long, k4 long")
    _write(removed.select("id_schema", F.expr(_hex_sql()).alias("hash")), remove_dir)
    add_ids = session.read.parquet(str(owners_dir)).count()
    remove_ids = session.read.parquet(str(remove_dir)).count()
    footer = read_footer(digests_path)
    if full_upload:
        current_ids = add_ids
    elif mode is SyncMode.MIRROR:
        current_ids = previous_ids + add_ids - remove_ids
    elif footer.distinct_ids is not None:
        current_ids = sum(n for schema, n in footer.distinct_ids.items() if schema in schemas)
    else:
        current_ids = current.select(*words).distinct().count()
    if footer.people is not None and set(footer.distinct_ids or {}) <= set(schemas):
        current_people = footer.people
    else:
        current_people = current.select("row_key").distinct().count()
    return AudiencePlan(
        mode=mode,
        id_schemas=schemas,
        add_rows_path=add_dir / "*.parquet",
        remove_ids_path=remove_dir / "*.parquet",
        current_ids_path=digests_path,
        current_ids=current_ids,
        current_people=current_people,
        previous_ids=previous_ids,
        add_ids=add_ids,
        add_rows=session.read.parquet(str(add_dir)).count(),
        remove_ids=remove_ids,
        full_upload=full_upload,
    )


def _write(frame: DataFrame, folder: Path) -> Path:
    """Write `frame` as Parquet partitions into `folder` (replaced), in the executors."""
    shutil.rmtree(folder, ignore_errors=True)
    frame.write.mode("overwrite").parquet(str(folder))
    return folder


def read_ids(session: SparkSession, location: str) -> DataFrame:
    """(row_key, id_schema, k1..k4 as BIGINT) of a prepared `ids.parquet` written by ttsync."""
    frame = session.read.parquet(location)
    return frame.select("row_key", "id_schema", *(_signed(k) for k in KEY_COLUMNS))


def prepared_ids(session: SparkSession, parts_dir: Path) -> DataFrame:
    """The identifiers (row_key, id_schema, k1..k4) among the executors' prepare output in `parts_dir`."""
    from pyspark.sql import functions as F

    parts = session.read.parquet(str(parts_dir))
    return parts.where(F.col("part") == "id").select("row_key", "id_schema", *KEY_COLUMNS)
