"""Identity on Spark executors gives the local path's identifiers, rejects and match report (Spark local[2])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.identity import ColumnSpec, hash_identifier
from ttsync.identity.rowkeys import KeyHasher
from ttsync.spark.prepare import prepare_with_spark
from ttsync.sync.prepare import prepare_to_parquet

SPECS = [
    ColumnSpec("email", "email"),
    ColumnSpec("phone", "phone", region="US", region_column="country"),
    ColumnSpec("maid", "idfa", hash_state="auto"),
]


def _table() -> pa.Table:
    n = 3000
    return pa.table(
        {
            "id": [None if i % 500 == 7 else f"c{i}" for i in range(n)],
            "email": [f" User{i % 2000}@Example.com" if i % 17 else "n/a" for i in range(n)],
            "phone": [f"(415) 555-{i % 10000:04d}" if i % 5 else "020 7946 0018" for i in range(n)],
            "country": [None if i % 5 else "GB" for i in range(n)],
            # An `auto` column that is mostly pre-hashed: decided sha256 once, raw values then do not fit.
            "maid": [
                hash_identifier("idfa", f"6d92078a-8246-4ba4-ae5b-{i:012d}") if i % 20 else "raw?"
                for i in range(n)
            ],
        }
    )


def test_executors_give_the_local_ids_rejects_and_report(spark_local: Any, tmp_path: Path) -> None:
    table = _table()
    hasher = KeyHasher.ephemeral()
    local = prepare_to_parquet(table.to_batches(max_chunksize=1500), specs=SPECS, key_column="id",
                               out_dir=tmp_path / "local", key_hasher=hasher)  # fmt: skip
    frame = spark_local.createDataFrame(table.to_pandas()).repartition(3)
    spark = prepare_with_spark(
        frame, specs=SPECS, key_column="id", out_dir=tmp_path / "spark", key_hasher=hasher
    )
    assert spark.report == local.report
    assert [a.decided for a in spark.report.auto] == ["sha256"]
    assert spark.report.auto[0].not_fitting > 0
    assert spark.rows_read == local.rows_read == table.num_rows

    def rows(path: Path, columns: list[str]) -> list[tuple[Any, ...]]:
        return sorted(tuple(r[c] for c in columns) for r in pq.read_table(path).to_pylist())

    ids = ["row_key", "id_schema", "k1", "k2", "k3", "k4"]
    assert rows(spark.ids_path, ids) == rows(local.ids_path, ids)
    # Rejected rows keep their key and reason; rows without a key are named by position (per partition on Spark).
    keyed = [r for r in rows(spark.rejects_path, ["row_key", "column", "reason"]) if not r[0].startswith("#")]
    assert keyed == [
        r for r in rows(local.rejects_path, ["row_key", "column", "reason"]) if not r[0].startswith("#")
    ]
    assert len(keyed) > 0
    unkeyed = [r for r in rows(spark.rejects_path, ["row_key", "reason"]) if r[0].startswith("#")]
    assert len(unkeyed) == table.column("id").null_count
    assert {r[1] for r in unkeyed} == {"missing_key"}
    assert (
        pq.read_metadata(spark.ids_path).metadata == pq.read_metadata(local.ids_path).metadata
    )  # footer counts
