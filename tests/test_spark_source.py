"""The `spark` source kind: Spark SQL over registered Parquet; one read-only query only (Spark local[2])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.config.models import Source
from ttsync.sources import SourceError, open_source


def test_streams_spark_sql_in_batches_and_refuses_writes(spark_local: Any, tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"id": list(range(250)), "email": [f"u{i}@x.com" for i in range(250)]}),
        tmp_path / "p.parquet",
    )
    source = Source(name="lake", kind="spark", master="local[2]", path="p.parquet", table="people")
    with open_source(source, tmp_path) as src:
        assert src.columns("SELECT id, email FROM people") == ["id", "email"]
        schema = src.schema("SELECT id, email FROM people")
        assert schema is not None
        assert pa.types.is_string(schema.field("email").type)
        batches = list(src.stream("SELECT id, email FROM people ORDER BY id", batch_rows=100))
        assert [b.num_rows for b in batches] == [100, 100, 50]
        assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(250))
        for statement in ("CREATE TABLE t AS SELECT 1", "INSERT INTO people SELECT 1, 'a'", "DROP TABLE people",
                          "SELECT 1; DROP TABLE people"):  # fmt: skip
            with pytest.raises(SourceError, match="one read-only SELECT"):
                src.columns(statement)
        with pytest.raises(SourceError, match="the query failed") as missing:
            src.columns("SELECT * FROM nowhere")
        assert missing.value.resolution_key == "source_not_found"


def test_spark_settings_are_checked_with_fixes() -> None:
    with pytest.raises(ValueError, match="only for spark sources"):
        Source(name="w", kind="duckdb", path="w.duckdb", master="local[2]")
    with pytest.raises(ValueError, match="hash_in_warehouse works on duckdb and sqlalchemy"):
        Source(name="s", kind="spark", hash_in_warehouse=True)
    with pytest.raises(ValueError, match="e164_columns only applies"):
        Source(name="w", kind="duckdb", path="w.duckdb", e164_columns=["phone"])
