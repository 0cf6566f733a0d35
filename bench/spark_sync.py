"""Benchmark: the audience prepare + plan stages through Spark vs the local path, on generated people.

Generates N people (key, email, idfa; deterministic, about 2% bad emails and 2% all-zero idfas) into a Parquet
file (not timed), then, each in its own process so peak memory is its own:

- local: DuckDB source stream -> `prepare_to_parquet` -> `plan_audience` (first delivery: everyone is added);
- spark: `prepare_with_spark` (identity on the executors, mapInArrow) -> `plan_in_spark` on `--master`.

Spark's session start and a 20,000-row warm-up are reported apart and not timed. Prints one JSON line per
path: rows/s, rows/s per core, wall and CPU seconds, peak RSS of the Python driver and
(Spark) of the JVM (driver and executors share it in local mode), and the upload time TikTok's rate limit
imposes at `--qps` requests/s of `--batch-rows` identifiers (ids / (qps x batch)).

    python bench/spark_sync.py --rows 2000000 [--master local[2]] [--paths local,spark]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import psutil

from ttsync.identity import ColumnSpec

SPECS = [ColumnSpec("email", "email"), ColumnSpec("idfa", "idfa")]
SCHEMAS = ["EMAIL_SHA256", "IDFA_SHA256"]


def generate(path: Path, rows: int) -> None:
    """N people as Parquet: 2% of emails without `@`, 2% all-zero idfas, 1% shared emails (duplicates)."""
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (
              SELECT 'c' || i AS customer_id,
                     CASE WHEN i % 50 = 7 THEN 'no email ' || i
                          WHEN i % 100 = 3 THEN 'User' || (i - 1) || '@Example.com'
                          ELSE '  User' || i || '@Example.com' END AS email,
                     CASE WHEN i % 50 = 11 THEN '00000000-0000-0000-0000-000000000000'
                          ELSE upper(substr(m, 1, 8) || '-' || substr(m, 9, 4) || '-' || substr(m, 13, 4) || '-' ||
                                     substr(m, 17, 4) || '-' || substr(m, 21, 12)) END AS idfa
              FROM (SELECT i, md5(i::VARCHAR) AS m FROM range({rows}) t(i))
            ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 262144)"""
        )


class _PeakRss:
    """Samples the RSS of this process's child processes (the JVM and Python workers) every 0.2 s."""

    def __init__(self) -> None:
        self.jvm_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    if "java" in child.name():
                        self.jvm_peak = max(self.jvm_peak, child.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.2)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_local(data: Path, work: Path) -> dict[str, Any]:
    from ttsync.config.models import Source
    from ttsync.sources import open_source
    from ttsync.sync.plan import SyncMode, connect, plan_audience
    from ttsync.sync.prepare import prepare_to_parquet

    started, cpu = time.perf_counter(), time.process_time()
    with open_source(
        Source(name="bench", kind="parquet", path=str(data), table="people"), data.parent
    ) as src:
        out = prepare_to_parquet(
            src.stream("SELECT * FROM people", batch_rows=500_000),
            specs=SPECS,
            key_column="customer_id",
            out_dir=work / "prepared",
        )
    prepared_at = time.perf_counter()
    con = connect(work / "plan")
    try:
        plan = plan_audience(
            con,
            prepared_glob=str(out.ids_path),
            digests_path=out.digests_path,
            snapshot=None,
            id_schemas=SCHEMAS,
            mode=SyncMode.MIRROR,
            work_dir=work / "plan",
        )
    finally:
        con.close()
    return _result("local", out.rows_read, started, cpu, prepared_at, plan.add_ids, out.report.to_dict())


def run_spark(data: Path, work: Path, master: str) -> dict[str, Any]:
    from ttsync.identity.rowkeys import KeyHasher
    from ttsync.sources.spark_session import spark_session
    from ttsync.spark.plan import plan_in_spark, prepared_ids
    from ttsync.spark.prepare import prepare_with_spark
    from ttsync.sync.plan import SyncMode

    began = time.perf_counter()
    session = spark_session(master, {"spark.local.dir": str(work / "spark-tmp")})
    session.read.parquet(str(data)).createOrReplaceTempView("people")
    # Not timed: JVM start, JIT warm-up and the Python workers' first imports (a fixed cost per session).
    prepare_with_spark(
        session.sql("SELECT * FROM people LIMIT 20000"),
        specs=SPECS,
        key_column="customer_id",
        out_dir=work / "warmup",
        key_hasher=KeyHasher.ephemeral(),
    )
    startup = time.perf_counter() - began
    with _PeakRss() as rss:
        started, cpu = time.perf_counter(), time.process_time()
        out = prepare_with_spark(
            session.sql("SELECT * FROM people"),
            specs=SPECS,
            key_column="customer_id",
            out_dir=work / "prepared",
            key_hasher=KeyHasher.ephemeral(),
        )
        prepared_at = time.perf_counter()
        assert out.digests_path is not None  # Spark's prepare writes the digests-only set
        plan = plan_in_spark(
            session,
            prepared=prepared_ids(session, work / "prepared" / "spark"),
            digests_path=out.digests_path,
            snapshot=None,
            id_schemas=SCHEMAS,
            mode=SyncMode.MIRROR,
            work_dir=work / "plan",
        )
    result = _result("spark", out.rows_read, started, cpu, prepared_at, plan.add_ids, out.report.to_dict())
    result["master"] = master
    result["session_start_and_warmup_s"] = round(startup, 1)
    result["jvm_peak_rss_mib"] = round(rss.jvm_peak / 2**20)
    result["executor_cores"] = session.sparkContext.defaultParallelism
    return result


def _result(
    path: str, rows: int, started: float, cpu: float, prepared_at: float, add_ids: int, report: dict[str, Any]
) -> dict[str, Any]:
    wall = time.perf_counter() - started
    return {
        "path": path,
        "rows": rows,
        "wall_s": round(wall, 2),
        "prepare_s": round(prepared_at - started, 2),
        "plan_s": round(wall - (prepared_at - started), 2),
        "rows_per_s": round(rows / wall),
        "driver_cpu_s": round(time.process_time() - cpu, 2),
        "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "ids_to_add": add_ids,
        "people_matchable": report["people_matchable"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--paths", default="local,spark")
    parser.add_argument("--qps", type=float, default=10.0, help="mapping requests per second TikTok allows")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="identifiers per mapping request")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one path in this process
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        data = Path(args.data)
        with tempfile.TemporaryDirectory(prefix="ttsync-bench-", dir=data.parent) as work:
            if args.only == "local":
                result = run_local(data, Path(work))
            else:
                result = run_spark(data, Path(work), args.master)
        cores = int(result.get("executor_cores") or min(2, os.cpu_count() or 1))
        result["cores"] = cores
        result["rows_per_s_per_core"] = round(result["rows_per_s"] / cores)
        result["upload_s_at_rate_limit"] = round(result["ids_to_add"] / (args.qps * args.batch_rows), 1)
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="ttsync-bench-") as tmp:
        data = Path(tmp) / "people.parquet"
        generate(data, args.rows)
        for path in args.paths.split(","):
            command = [sys.executable, __file__, "--only", path, "--data", str(data), "--master", args.master,
                       "--qps", str(args.qps), "--batch-rows", str(args.batch_rows)]  # fmt: skip
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
