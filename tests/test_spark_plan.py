"""The audience diff in Spark gives the DuckDB plan's adds, removes and counts (Spark local[2])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.identity import ColumnSpec
from ttsync.identity.digests import KEY_COLUMNS
from ttsync.spark.plan import plan_in_spark, read_ids
from ttsync.spark.snapshot import SparkSnapshot
from ttsync.sync.plan import (
    AudiencePlan,
    SyncMode,
    connect,
    iter_add_batches,
    iter_remove_batches,
    plan_audience,
)
from ttsync.sync.prepare import prepare_to_parquet
from ttsync.sync.snapshot import commit_snapshot_file

SPECS = [ColumnSpec("email", "email"), ColumnSpec("idfa", "idfa", maid_hash="md5")]
SCHEMAS = ["EMAIL_SHA256", "IDFA_MD5"]


def _people(first: int, last: int) -> pa.Table:
    rows = range(first, last)
    return pa.table(
        {
            "id": [f"c{i}" for i in rows],
            # Every 9th person shares an address with another: one owner row per identifier.
            "email": [f"person{i - i % 9 if i % 9 == 1 else i}@example.com" for i in rows],
            "idfa": [f"6d92078a-8246-4ba4-ae5b-{i:012d}" if i % 3 else None for i in rows],
        }
    )


def _prepare(table: pa.Table, out: Path) -> Path:
    prepare_to_parquet(table.to_batches(max_chunksize=100), specs=SPECS, key_column="id", out_dir=out)
    # The digests-only file beside ids.parquet (footer included), as Spark's prepare writes it: the local
    # prepare leaves that set to the plan.
    ids = pq.read_table(out / "ids.parquet")
    pq.write_table(ids.select(["id_schema", *KEY_COLUMNS]), out / "digests.parquet")
    return out


def _sent(plan: AudiencePlan, tmp: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the uploader would send: add rows and remove rows, as sorted tuples."""
    con = connect(tmp / "read")
    try:
        adds = [tuple(r.values()) for b in iter_add_batches(con, plan, 70) for r in b.to_pylist()]
        removes = [tuple(r.values()) for b in iter_remove_batches(con, plan, 70) for r in b.to_pylist()]
    finally:
        con.close()
    return sorted(adds, key=str), sorted(removes, key=str)


@pytest.mark.parametrize("mode", [SyncMode.MIRROR, SyncMode.APPEND])
def test_spark_diff_equals_the_duckdb_diff(spark_local: Any, tmp_path: Path, mode: SyncMode) -> None:
    old = _prepare(_people(0, 400), tmp_path / "old")
    snapshot = tmp_path / "snapshot.parquet"
    commit_snapshot_file(old / "digests.parquet", snapshot)
    new = _prepare(_people(100, 600), tmp_path / "new")  # 100 removed, 200 added, 300 kept
    con = connect(tmp_path / "duck")
    try:
        local = plan_audience(
            con, prepared_glob=str(new / "ids.parquet"), digests_path=new / "digests.parquet", snapshot=snapshot,
            id_schemas=SCHEMAS, mode=mode, work_dir=tmp_path / "duck",
        )  # fmt: skip
    finally:
        con.close()
    spark = plan_in_spark(
        spark_local, prepared=read_ids(spark_local, str(new / "ids.parquet")), digests_path=new / "digests.parquet",
        snapshot=snapshot, id_schemas=SCHEMAS, mode=mode, work_dir=tmp_path / "spark",
    )  # fmt: skip
    assert spark.to_dict() == local.to_dict()
    assert local.add_ids > 0
    assert (local.remove_ids > 0) == (mode is SyncMode.MIRROR)
    assert _sent(spark, tmp_path) == _sent(local, tmp_path)


def test_first_delivery_in_spark_uploads_everyone(spark_local: Any, tmp_path: Path) -> None:
    new = _prepare(_people(0, 250), tmp_path / "new")
    spark = plan_in_spark(
        spark_local, prepared=read_ids(spark_local, str(new / "ids.parquet")), digests_path=new / "digests.parquet",
        snapshot=None, id_schemas=SCHEMAS, mode=SyncMode.MIRROR, work_dir=tmp_path / "spark",
    )  # fmt: skip
    assert spark.full_upload
    with duckdb.connect() as con:
        distinct = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT id_schema, k1, k2, k3, k4 FROM read_parquet('{new / 'ids.parquet'}'))"
        ).fetchall()[0][0]
    assert spark.add_ids == distinct
    assert spark.remove_ids == 0


def test_snapshot_versions_on_a_hadoop_uri(spark_local: Any, tmp_path: Path) -> None:
    """Commits write the next version; the current one is the highest with `_SUCCESS`; an append unions; only
    the previous version is kept besides the current one."""
    first = _prepare(_people(0, 120), tmp_path / "first")
    second = _prepare(_people(100, 150), tmp_path / "second")

    def plan(mode: SyncMode, prepared: Path, full: bool) -> AudiencePlan:
        return AudiencePlan(
            mode=mode, id_schemas=tuple(SCHEMAS), add_rows_path=prepared, remove_ids_path=prepared,
            current_ids_path=prepared / "digests.parquet", current_ids=0, current_people=0, previous_ids=0,
            add_ids=0, add_rows=0, remove_ids=0, full_upload=full,
        )  # fmt: skip

    def distinct(*folders: Path) -> int:
        with duckdb.connect() as con:
            files = ", ".join(f"'{f / 'digests.parquet'}'" for f in folders)
            query = f"SELECT count(*) FROM (SELECT DISTINCT id_schema, k1, k2, k3, k4 FROM read_parquet([{files}]))"
            return int(con.execute(query).fetchall()[0][0])

    store = SparkSnapshot(spark_local, (tmp_path / "lake" / "a1").as_uri())
    assert store.current() is None
    assert store.commit(plan(SyncMode.MIRROR, first, True)) == distinct(first)
    assert store.commit(plan(SyncMode.APPEND, second, False)) == distinct(first, second)  # the union
    assert store.distinct_ids() == distinct(first, second)
    assert store.commit(plan(SyncMode.MIRROR, second, False)) == distinct(second)
    versions = tmp_path / "lake" / "a1"
    assert sorted(p.name for p in versions.iterdir()) == ["v000002", "v000003"]
    (versions / "v000004").mkdir()  # a commit that died before Spark's `_SUCCESS`: not a snapshot
    assert store.current() == (versions / "v000003").as_uri()
    store.delete()
    assert not versions.exists()
