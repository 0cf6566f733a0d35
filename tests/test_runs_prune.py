"""`ttsync runs prune` and the retention setting: old run folders of finished workflows go; folders of
workflows that can still be retried and every snapshot stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from audience_env import Env
from ttsync.app.retention import load_retention, prune_runs, save_retention
from ttsync.app.workspace.layout import parse_config
from ttsync.config.file import Retention
from ttsync.sync.snapshot import distinct_ids


def _runs(env: Env) -> set[str]:
    return {p.name for p in (env.workspace.state_dir / "runs").iterdir()}


def _snapshot(env: Env) -> Path:
    found = list((env.workspace.state_dir / "snapshots").rglob("*.parquet"))
    assert len(found) == 1
    return found[0]


def test_prune_keeps_snapshots_and_retryable_runs(env: Env) -> None:
    first, second = env.run(), env.run()
    assert first.ok
    assert second.ok
    snapshot = _snapshot(env)
    before_ids = distinct_ids(snapshot)
    with duckdb.connect() as con:
        before_rows = con.execute(f"SELECT count(*) FROM read_parquet('{snapshot}')").fetchall()
    # A third run fails (TikTok refuses the mapping): its folder must survive, for `workflows retry`.
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
        con.execute("UPDATE Merged_Customers SET lifetime_value = 0 WHERE hash(amperity_id) % 10 = 0")
    env.emulator.admin.set_faults(rate=1.0, codes=[40000], paths=["segment/mapping/"])
    failed = env.run()
    env.emulator.admin.clear_faults()
    assert not failed.ok
    assert _runs(env) == {first.workflow.id, second.workflow.id, failed.workflow.id}

    state = env.workspace.state_dir
    # Nothing is older than the default 30 days.
    assert prune_runs(state, env.store).pruned == []
    later = datetime.now(UTC) + timedelta(days=31)
    dry = prune_runs(state, env.store, dry_run=True, now=later)
    assert {f.workflow_id for f in dry.pruned} == {first.workflow.id, second.workflow.id}
    assert len(_runs(env)) == 3  # a dry run deletes nothing
    kept_newest = prune_runs(state, env.store, keep=1)
    assert {f.workflow_id for f in kept_newest.pruned} == {first.workflow.id}
    assert _runs(env) == {second.workflow.id, failed.workflow.id}
    done = prune_runs(state, env.store, older_than_days=30, now=later)
    assert {f.workflow_id for f in done.pruned} == {second.workflow.id}
    assert _runs(env) == {failed.workflow.id}
    reasons = {f.workflow_id: f.reason for f in done.folders}
    assert "retried" in reasons[failed.workflow.id]

    # The snapshot (a hard link to the pruned run's digests) is intact, and the failed run still converges.
    assert _snapshot(env) == snapshot
    assert distinct_ids(snapshot) == before_ids
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*) FROM read_parquet('{snapshot}')").fetchall() == before_rows
    from audience_env import ORCH
    from ttsync.app.runs import build_run, continue_run

    retried = continue_run(build_run(env.workspace, env.store, ORCH), failed.workflow.id, "retry")
    assert retried.ok, retried.workflow.error
    assert env.members() == env.expected()


def test_retention_setting_round_trips_and_defaults_to_30_days(tmp_path: Path) -> None:
    assert load_retention(tmp_path).run_folders_days == 30
    save_retention(tmp_path, Retention(run_folders_days=7))
    assert load_retention(tmp_path).run_folders_days == 7
    assert parse_config("retention: {run_folders_days: 3}").retention.run_folders_days == 3
    with pytest.raises(Exception, match="run_folders_days"):
        parse_config("retention: {run_folders_days: -1}")


def test_runs_prune_cli(env: Env) -> None:
    assert env.run().ok
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | env.environ
    cli_env["TTSYNC_WORKSPACE"] = str(env.workspace.root)

    def ttsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ttsync", *args], env=cli_env, capture_output=True, text=True, timeout=120
        )

    dry = ttsync("runs", "prune", "--older-than", "0", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert report["pruned"] == 1
    assert len(_runs(env)) == 1
    done = ttsync("runs", "prune", "--older-than", "0")
    assert done.returncode == 0, done.stderr
    assert "1 run folder(s) pruned" in done.stdout
    assert _runs(env) == set()
