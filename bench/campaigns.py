"""Benchmark a campaign's plan against one orchestration's plan of the same size (issue 14's target: the
campaign within 2x the orchestration, at most 1 GiB RSS).

One workspace, a DuckDB warehouse of N people (distinct emails), the emulator in its own process:

- orchestration `everyone`: every person (`SELECT customer_id, email FROM customers`);
- campaign `bench`: audience segment `everyone` (the same N people), exclusion segments `recent` (~5%) and
  `top` (~2%), three sent groups of 30% each plus a 10% holdout, one destination (recurring).

Each plan runs in its own child process, the way a user runs it (`ttsync run everyone --plan`:
`app.runs.preview_run`; `ttsync campaigns plan bench`: `app.campaigns.plan_campaign`), first with empty
snapshots; so its wall time, process CPU (all threads: DuckDB's too) and peak RSS are that plan's alone.
Prints one JSON line: both plans, the CPU and wall ratios, the campaign's sizes per group.

    python bench/campaigns.py [--people 10000000]      # --people 20000 is the CI smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from emulator_process import emulator_process
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.layout import Workspace, parse_config
from ttsync.store import write_key_file

CONFIG = """
version: 1
credentials:
  - name: bench
    app_id: "{app_id}"
    app_secret_env: TTSYNC_APP_SECRET
    access_token_env: TTSYNC_ACCESS_TOKEN
    advertiser_ids: ["{advertiser}"]
    environment: sandbox
sources:
  - name: warehouse
    kind: duckdb
    path: warehouse.duckdb
destinations:
  - name: bench-audience
    kind: audience
    credential: bench
    settings:
      advertiser_ids: ["{advertiser}"]
      user_id_types: [EMAIL]
templates:
  - name: bench
    destination: bench-audience
    attribute_mapping: {{email: EMAIL}}
    audience_name_template: "{{campaign}} - {{group}}"
    available_to_campaigns: true
orchestrations:
  - name: everyone
    source: warehouse
    destination: bench-audience
    template: bench
    key_column: customer_id
    settings:
      audience_name: Benchmark audience
    query: SELECT customer_id, email FROM customers
segments:
  - name: everyone
    source: warehouse
    key_column: customer_id
    query: SELECT customer_id, email FROM customers
  - name: recent
    source: warehouse
    key_column: customer_id
    query: SELECT customer_id FROM customers WHERE days_since_purchase < 5
  - name: top
    source: warehouse
    key_column: customer_id
    query: SELECT customer_id FROM customers WHERE lifetime_value >= 4900
campaigns:
  - name: bench
    audience: everyone
    exclusions: [recent, top]
    sub_audiences:
      - {{name: a, percent: 30}}
      - {{name: b, percent: 30}}
      - {{name: c, percent: 30}}
    holdout_percent: 10
    destinations:
      - {{destination: bench-audience, template: bench}}
    timing: recurring
    launch_date: 2030-01-01
"""
TODAY = "2030-01-02"


def _warehouse(path: Path, people: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT 'c' || i AS customer_id, 'p' || i || '@example.com' AS email, "
            "(i * 7919) % 5000 AS lifetime_value, (i * 104729) % 100 AS days_since_purchase "
            f"FROM range({people}) t(i)"
        )


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss of a child can carry its parent's peak across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _plan(kind: str, root: Path) -> dict[str, Any]:
    """Child process: one plan, measured on its own (imports are done before the clock starts)."""
    from datetime import date

    from ttsync.app.campaigns import plan_campaign
    from ttsync.app.runs import build_run, preview_run

    workspace = Workspace(root)
    rss_before = _peak_rss_mib()
    usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with workspace.open_store() as store:
        if kind == "orchestration":
            preview = preview_run(build_run(workspace, store, "everyone"))
            detail: dict[str, Any] = {"adds": preview["plan"]["add_ids"], "rows_read": preview["rows_read"]}
        else:
            plan = plan_campaign(workspace, store, "bench", today=date.fromisoformat(TODAY))
            detail = {
                "sizes": plan["sizes"],
                "adds": {d["group"]: d["adds"] for d in plan["deliveries"]},
                "warnings": plan["warnings"],
            }
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(_peak_rss_mib()),
        "rss_after_imports_mib": round(rss_before),
        **detail,
    }


def _child(kind: str, root: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--root", str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--child", choices=("orchestration", "campaign"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_plan(args.child, args.root)))
        return
    with (
        tempfile.TemporaryDirectory(prefix="ttsync-bench-campaigns-") as tmp,
        emulator_process() as (seed, _),
    ):
        os.environ.update(
            TTSYNC_APP_SECRET=seed["app_secret"],
            TTSYNC_ACCESS_TOKEN=seed["operator_token"],
            TTSYNC_SANDBOX_URL=seed["base_url"],
        )
        workspace = Workspace(Path(tmp) / "ws")
        workspace.state_dir.mkdir(parents=True)
        write_key_file(workspace.key_file)
        start = time.perf_counter()
        _warehouse(workspace.root / "warehouse.duckdb", args.people)
        with workspace.open_store() as store:
            config = CONFIG.format(app_id=seed["app_id"], advertiser=seed["advertiser_ids"][0])
            apply_config(store, parse_config(config))
        setup_s = time.perf_counter() - start
        orchestration = _child("orchestration", workspace.root)
        campaign = _child("campaign", workspace.root)
    sizes = campaign.pop("sizes")
    print(
        json.dumps(
            {
                "bench": "campaign_plan",
                "people": args.people,
                "audience_after_exclusions": sum(sizes.values()),
                "sizes": sizes,
                "setup_s": round(setup_s, 2),
                "orchestration_plan": orchestration,
                "campaign_plan": campaign,
                "cpu_ratio": round(campaign["cpu_seconds"] / orchestration["cpu_seconds"], 2),
                "wall_ratio": round(campaign["seconds"] / orchestration["seconds"], 2),
                "target": "campaign plan <= 2x the orchestration plan, peak RSS <= 1024 MiB",
                "cpus": os.cpu_count(),
                "load_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
