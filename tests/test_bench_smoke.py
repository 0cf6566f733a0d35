"""CI smoke for every script under bench/: each runs as a real subprocess at a tiny size and prints JSON.

The benchmarks measure performance; this only keeps them from rotting (an import moved, a key renamed, a
task renamed). No timed assertions: numbers are checked for presence and type, plus the few facts that do not
depend on the machine (nothing failed, a churn re-sync sends exactly the churn). The scripts start together
and run in parallel, so the module costs about as long as the slowest one (the API load bench).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
TIMEOUT_SECONDS = 420  # a bound for a hung script on a loaded machine, not a performance check


@dataclass(frozen=True)
class Case:
    script: str
    args: tuple[str, ...]
    lines: int  # JSON documents expected on stdout
    keys: frozenset[str]  # keys every document must have


CASES = (
    Case(
        "prepare.py",
        ("--rows", "3000", "--batch-rows", "1000", "--anchor-hashes", "20000"),
        3,
        frozenset(
            {
                "kind",
                "rows",
                "rows_per_s",
                "cpu_ns_per_row",
                "first_batch_cpu_ns_per_row",
                "first_batch_seconds",
                "later_batches_cpu_ns_per_row",
                "main_thread_cpu_ns_per_row",
                "worker_cpu_ns_per_row",
                "serial_fraction",
                "ids",
                "rejected",
                "report_seconds",
                "peak_rss_mib",
                "anchors",
                "fraction_of_sha256_limit",
                "fraction_of_sha256_limit_at_cpu_cost",
            }
        ),
    ),
    Case(
        "client_throughput.py",
        ("--qps", "50", "--requests", "4", "--rows", "10", "--body", "typed,json"),
        2,
        frozenset(
            {
                "qps",
                "body",
                "achieved_rps",
                "fraction_of_ceiling",
                "paced_fraction_of_ceiling",
                "failed",
                "rate_limited_answers",
                "client_cpu_seconds_per_request",
                "emulator_cpu_seconds_per_request",
            }
        ),
    ),
    Case(
        "audience_sync.py",
        ("--people", "2000", "--qps", "50", "--batch-rows", "500", "--churn", "0.01"),
        2,
        frozenset(
            {
                "run",
                "ids_sent",
                "requests",
                "task_seconds",
                "local_seconds",
                "local_cpu_seconds",
                "fraction_of_ceiling",
                "client_cpu_ms_per_request",
                "emulator_cpu_ms_per_request",
                "rate_limit_answers",
                "limiter_wait_ms_per_request",
                "limiter_refusals",
                "limiter_restamped",
                "first_send_after_seconds",
                "after_last_answer_seconds",
                "in_flight",
                "peak_rss_mib",
            }
        ),
    ),
    Case(
        "writeback.py",
        ("--rows", "1000", "--targets", "duckdb,sqlite"),
        2,
        frozenset({"target", "rows_per_s"}),
    ),
    Case(
        "events.py",
        ("--events", "300"),
        1,
        frozenset({"events", "events_per_s", "sent", "cpu_us_per_event", "peak_rss_mib"}),
    ),
    Case(
        "api_load.py",
        ("--workflows", "20", "--notifications", "5", "--clients", "2", "--seconds", "1", "--no-run"),
        1,
        frozenset({"requests", "errors", "requests_per_second", "p95_ms"}),
    ),
    Case(
        "campaigns.py",
        ("--people", "20000"),
        1,
        frozenset({"people", "sizes", "orchestration_plan", "campaign_plan", "cpu_ratio"}),
    ),
    Case(
        "ui_render.py",
        ("--workflows", "200", "--notifications", "20", "--renders", "2", "--days", "30"),
        1,
        frozenset({"workflows", "target_p95_ms", "slowest", "pages"}),
    ),
    # The Spark path needs a JVM and a session start (tens of seconds); tests/test_spark_*.py cover it.
    Case(
        "spark_sync.py",
        ("--rows", "2000", "--paths", "local"),
        1,
        frozenset({"path", "rows", "rows_per_s", "driver_peak_rss_mib", "ids_to_add"}),
    ),
)


def _documents(stdout: str) -> list[dict[str, Any]]:
    """One JSON object per line, or a single (indented) JSON object."""
    text = stdout.strip()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [whole]


@pytest.fixture(scope="module")
def outputs() -> Iterator[dict[str, list[dict[str, Any]]]]:
    # Seven scripts start at once: on a loaded 2-core machine an emulator can take well over its usual 30 s.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TTSYNC_BENCH_STARTUP_SECONDS": "180"}
    procs = {
        case.script: subprocess.Popen(
            [sys.executable, str(BENCH / case.script), *case.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for case in CASES
    }
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for script, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT_SECONDS)
            assert proc.returncode == 0, f"bench/{script} exited {proc.returncode}: {err[-3000:]}"
            results[script] = _documents(out)
        yield results
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_every_bench_script_is_covered() -> None:
    helpers = {"emulator_process.py", "load_clients.py"}  # imported or started by the benches, not benches
    scripts = {p.name for p in BENCH.glob("*.py")} - helpers
    assert scripts == {case.script for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.script for case in CASES])
def test_bench_prints_json_with_expected_keys(case: Case, outputs: dict[str, list[dict[str, Any]]]) -> None:
    documents = outputs[case.script]
    assert len(documents) == case.lines
    for document in documents:
        assert isinstance(document, dict)
        missing = case.keys - document.keys()
        assert not missing, f"bench/{case.script} lacks {sorted(missing)}: {document}"


def test_bench_facts_that_do_not_depend_on_the_machine(outputs: dict[str, list[dict[str, Any]]]) -> None:
    for line in outputs["client_throughput.py"]:
        assert line["failed"] == 0
        assert line["requests"] == 4
    assert {line["body"] for line in outputs["client_throughput.py"]} == {"typed", "json"}
    full, resync = outputs["audience_sync.py"]
    assert (full["run"], resync["run"]) == ("full", "resync")
    assert full["ids_sent"] > 0
    assert resync["ids_sent"] == resync["expected_ids_sent"] > 0  # exactly the churn, nothing else
    (campaign,) = outputs["campaigns.py"]
    sizes = campaign["sizes"]
    assert (
        sum(sizes.values()) == campaign["audience_after_exclusions"] > 10_000
    )  # groups partition the audience
    assert abs(sizes["holdout"] / campaign["audience_after_exclusions"] - 0.10) < 0.02  # the configured 10%
    # Each sent group's plan adds exactly its people (empty snapshots); the orchestration adds everyone.
    assert campaign["campaign_plan"]["adds"] == {g: n for g, n in sizes.items() if g != "holdout"}
    assert campaign["orchestration_plan"]["adds"] == campaign["people"]
    (ui,) = outputs["ui_render.py"]
    assert len(ui["pages"]) > 10
    assert all(page["kb"] > 0 for page in ui["pages"].values())
    prepared = {line["kind"]: line for line in outputs["prepare.py"]}
    assert set(prepared) == {"email", "maid", "phone"}
    for line in prepared.values():
        assert 0 < line["ids"] <= line["rows"]
        assert line["anchors"]["hashlib_sha256_32b_per_s"] > 0
    events = outputs["events.py"][0]
    assert events["sent"] == events["events"] == 300
    assert outputs["api_load.py"][0]["errors"] == 0
