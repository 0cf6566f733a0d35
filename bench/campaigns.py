"""Benchmark of a campaign's group assignment with exclusions: a DuckDB warehouse of N people, an audience
segment, two exclusion segments, three percentage groups plus a 10% holdout. Times `group_sizes` (the
campaign query with its exclusions, streamed, every row assigned by its keyed hash, the holdout's keys
written in their stored form) and, for reference, the stable-bucket hash alone. Prints one JSON line with
rows/s and the process's peak RSS.

    python bench/campaigns.py [--people 10000000]      # --people 20000 is the CI smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ttsync.app.campaigns import group_sizes
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.models import Source
from ttsync.store import repos
from ttsync.sync.groups import BucketFilter

DEST = [{"destination": "bench", "template": "bench"}]


def _warehouse(path: Path, people: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT 'c' || i AS customer_id, 'p' || i || '@example.com' AS email, "
            "(i * 7919) % 5000 AS lifetime_value, (i * 104729) % 100 AS days_since_purchase "
            f"FROM range({people}) t(i)"
        )


def _setup(root: Path, people: int) -> tuple[Workspace, Campaign]:
    workspace = init_workspace(root, sample=False).workspace
    _warehouse(root / "warehouse.duckdb", people)
    store = workspace.open_store()
    repos.save_source(store, Source(name="warehouse", kind="duckdb", path="warehouse.duckdb"))
    segments = [
        ("valuable", "SELECT customer_id, email, lifetime_value FROM customers WHERE lifetime_value >= 500"),
        ("recent", "SELECT customer_id FROM customers WHERE days_since_purchase < 5"),
        ("top", "SELECT customer_id FROM customers WHERE lifetime_value >= 4900"),
    ]
    for name, query in segments:
        repos.save_segment(
            store, Segment(name=name, source="warehouse", key_column="customer_id", query=query)
        )
    store.close()
    campaign = Campaign.model_validate(
        {
            "name": "bench",
            "audience": "valuable",
            "exclusions": ["recent", "top"],
            "sub_audiences": [{"name": g, "percent": 30} for g in ("a", "b", "c")],
            "holdout_percent": 10,
            "destinations": DEST,
            "launch_date": date(2030, 1, 1).isoformat(),
        }
    )
    return workspace, campaign


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ttsync-bench-campaigns-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        workspace, campaign = _setup(root, args.people)
        setup_s = time.perf_counter() - start
        store = workspace.open_store()
        holdout = workspace.state_dir / "campaigns" / "bench.holdout.parquet"
        start = time.perf_counter()
        sizes = group_sizes(workspace, store, campaign, holdout_path=holdout)
        assign_s = time.perf_counter() - start
        assigned = sum(sizes.values())
        assert pq.read_metadata(holdout).num_rows == sizes["holdout"]
        # The keyed hash alone, over the audience's keys (the part of the cost that grows per row).
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            reader = con.sql("SELECT customer_id FROM customers WHERE lifetime_value >= 500").to_arrow_reader(
                1_000_000
            )
            start = time.perf_counter()
            hashed = sum(BucketFilter("bench", "customer_id", 0, 9000)(b).num_rows for b in reader)
            hash_s = time.perf_counter() - start
        store.close()
    print(
        json.dumps(
            {
                "bench": "campaign_groups",
                "people": args.people,
                "audience_after_exclusions": assigned,
                "sizes": sizes,
                "setup_s": round(setup_s, 2),
                "assign_s": round(assign_s, 2),
                "assign_rows_per_s": round(assigned / assign_s) if assign_s else None,
                "bucket_hash_rows_per_s": round(hashed / hash_s * 10 / 9) if hash_s else None,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "cpus": os.cpu_count(),
                "load_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
