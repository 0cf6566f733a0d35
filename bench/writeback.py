"""Benchmark of write-back: rows/s of replacing one workflow's row outcomes in a target (delete + insert in one
transaction, the schema already migrated), for a DuckDB file (Arrow insert), a SQLite file (SQLAlchemy executemany) and PostgreSQL (COPY; set
$TTSYNC_BENCH_PG_URL to a database it may write to). Prints one JSON line per target.

    python bench/writeback.py [--rows 1000000] [--targets duckdb,sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from ttsync.writeback.config import ALL_TABLES, WritebackTarget
from ttsync.writeback.target import DuckDBTarget, SQLAlchemyTarget, TargetConnection
from ttsync.writeback.writer import WorkflowRows, migrate, write_rows


def _outcomes(rows: int) -> pa.Table:
    keys = pa.array([f"hk:{i:032x}" for i in range(rows)], pa.string())
    status = pa.array(["sent", "in_audience", "rejected", "in_audience"] * (rows // 4 + 1), pa.string())[
        :rows
    ]
    return pa.table(
        {
            "workflow_id": pa.array(["bench"] * rows, pa.string()),
            "orchestration": pa.array(["bench"] * rows, pa.string()),
            "row_key": keys,
            "identifier_type": pa.array(["EMAIL"] * rows, pa.string()),
            "identifier_column": pa.nulls(rows, pa.string()),
            "status": status,
            "reason": pa.nulls(rows, pa.string()),
        }
    )


def _run(kind: str, rows: int, folder: Path) -> dict[str, object]:
    conn: TargetConnection
    if kind == "duckdb":
        conn = DuckDBTarget(folder / "bench.duckdb", "ttsync")
        target = WritebackTarget("duckdb", str(folder / "bench.duckdb"), "ttsync", ALL_TABLES, "bench")
    elif kind == "postgres":
        url = os.environ["TTSYNC_BENCH_PG_URL"]  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres
        conn = SQLAlchemyTarget(url, "ttsync_bench")
        target = WritebackTarget("sqlalchemy", url, "ttsync_bench", ALL_TABLES, "bench")
    else:
        url = f"sqlite:///{folder / 'bench.sqlite'}"
        conn = SQLAlchemyTarget(url, "ttsync")
        target = WritebackTarget("sqlalchemy", url, "ttsync", ALL_TABLES, "bench")
    migrate(conn)
    data = WorkflowRows("bench", {"ttsync_row_outcomes": _outcomes(rows)})
    timings = []
    for _ in range(2):  # the second write replaces the first: the cost of a retried workflow
        start = time.perf_counter()
        write_rows(conn, target, data)
        timings.append(time.perf_counter() - start)
    conn.close()
    return {
        "bench": "writeback",
        "target": kind,
        "rows": rows,
        "first_write_s": round(timings[0], 3),
        "replace_s": round(timings[1], 3),
        "rows_per_s": round(rows / timings[0]),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--targets", default="duckdb,sqlite")
    args = parser.parse_args()
    for kind in args.targets.split(","):
        with tempfile.TemporaryDirectory(prefix="ttsync-bench-") as folder:
            print(json.dumps(_run(kind, args.rows, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
