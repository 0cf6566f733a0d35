"""Convergence however the next run starts: real `ttsync` processes killed with SIGKILL, fresh runs, retries,
two runs at once, and creates whose answer is lost (issue 10 §1). The emulator's audience must equal the
query's hashes after the next successful run, with one audience only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from audience_env import ORCH, Env
from ttsync.sample import apply_churn
from ttsync.store import repos
from ttsync.workflows.crashpoints import CRASH_ENV

AUDIENCE_NAME = "High value customers"


def cli(
    env: Env, *args: str, crash_at: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `ttsync ARGS` in a real process against the test workspace (optionally dying at a crash point)."""
    environ = os.environ | env.environ | {"TTSYNC_WORKSPACE": str(env.workspace.root)}
    environ.pop(CRASH_ENV, None)
    if crash_at:
        environ[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args], env=environ, capture_output=True, text=True, timeout=timeout
    )


def popen(env: Env, *args: str) -> subprocess.Popen[str]:
    environ = os.environ | env.environ | {"TTSYNC_WORKSPACE": str(env.workspace.root)}
    environ.pop(CRASH_ENV, None)
    return subprocess.Popen(
        [sys.executable, "-m", "ttsync", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def audiences(env: Env) -> list[dict[str, Any]]:
    return [a for a in env.emulator.admin.state()["audiences"] if a.get("name") == AUDIENCE_NAME]


def latest(env: Env) -> str:
    return repos.list_workflows(env.store, orchestration=ORCH, limit=1)[0].id


def test_fresh_run_after_a_kill_in_upload_removes_what_the_killed_run_sent(env: Env) -> None:
    assert env.run().ok
    apply_churn(env.workspace.sample_warehouse, fraction=0.2, seed=3)
    killed = cli(env, "run", ORCH, "--batch-rows", "40", crash_at="upload:batch#4")
    assert killed.returncode == -9, killed.stderr
    killed_id = latest(env)
    # The killed workflow is shown as interrupted, never "running" forever.
    listed = json.loads(cli(env, "workflows", "list", "--json").stdout)
    assert next(w for w in listed if w["id"] == killed_id)["state"] == "interrupted"
    # The query changes again: some of what the killed run added are no longer in it.
    apply_churn(env.workspace.sample_warehouse, fraction=0.2, seed=4)
    fresh = cli(env, "run", ORCH, "--json")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert env.members() == env.expected()
    # The killed workflow was superseded: retrying it now would re-send a stale plan, so it is refused.
    retried = cli(env, "workflows", "retry", killed_id)
    assert retried.returncode == 4, retried.stdout + retried.stderr
    assert "superseded" in retried.stderr
    assert "Traceback" not in retried.stderr
    assert env.members() == env.expected()
    assert len(audiences(env)) == 1


def test_two_concurrent_runs_exactly_one_sends(env: Env) -> None:
    # Latency on the mappings keeps the winner running while the loser starts.
    env.emulator.admin.set_faults(rate=0.0, codes=[], latency_ms=400, paths=["segment/mapping/"])
    procs = [popen(env, "run", ORCH, "--batch-rows", "25", "--json") for _ in range(2)]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 3], outputs
    loser = next(out for proc, out in zip(procs, outputs, strict=True) if proc.returncode == 3)
    winner = repos.list_workflows(env.store, orchestration=ORCH)
    assert len(winner) == 1  # the refused run created no workflow
    refusal = json.loads(loser[0])
    assert refusal["resolution"] == "workflow_running"
    assert winner[0].id in refusal["error"]
    env.emulator.admin.clear_faults()
    assert env.members() == env.expected()
    assert len(audiences(env)) == 1


def test_retry_of_a_running_workflow_is_refused(env: Env) -> None:
    # Each mapping answer takes 8 s (well under the client's 30 s timeout), so the run is still uploading while
    # the retry process starts, even on a loaded machine where starting a CLI process takes seconds.
    env.emulator.admin.set_faults(rate=0.0, codes=[], latency_ms=8000, paths=["segment/mapping/"])
    proc = popen(env, "run", ORCH, "--batch-rows", "25")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workflows = repos.list_workflows(env.store, orchestration=ORCH)
            if workflows and workflows[0].state == "running":
                break
            time.sleep(0.1)
        running = workflows[0].id
        refused = cli(env, "workflows", "retry", running, "--json")
        assert refused.returncode == 3
        data = json.loads(refused.stdout)
        assert data["resolution"] == "workflow_running"
        assert running in data["error"]
        env.emulator.admin.clear_faults()
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_lost_create_answer_adopts_the_audience(env: Env) -> None:
    # TikTok creates the audience, but the answer never arrives (every time).
    env.emulator.admin.set_faults(rate=0.0, codes=[], drop_response_rate=1.0, paths=["segment/audience/"])
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    assert len(audiences(env)) == 1
    assert env.members() == env.expected()


def test_killed_right_after_create_then_fresh_run_makes_no_second_audience(env: Env) -> None:
    killed = cli(env, "run", ORCH, crash_at="create:sent")
    assert killed.returncode == -9, killed.stderr
    assert len(audiences(env)) == 1
    fresh = cli(env, "run", ORCH, "--json")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert len(audiences(env)) == 1
    assert env.members() == env.expected()


def test_every_confirmed_batch_is_checkpointed(env: Env) -> None:
    # Killed at the 8th checkpoint (the 1st closes the empty remove phase): 7 confirmed add batches are
    # recorded, and a retry re-sends only the batches that were still in flight.
    killed = cli(env, "run", ORCH, "--batch-rows", "50", crash_at="upload:batch#8")
    assert killed.returncode == -9, killed.stderr
    retried = cli(env, "workflows", "retry", latest(env), "--json")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    upload = next(t for t in json.loads(retried.stdout)["tasks"] if t["name"] == "upload")
    assert upload["counts"]["batches_skipped"] >= 7
    assert env.members() == env.expected()


def _customer_file(env: Env) -> set[tuple[str, str]]:
    """Switch the destination to customer-file delivery (emails); return the expected email hashes."""
    destination = repos.get_destination(env.store, "tiktok-audiences")
    settings = destination.settings | {
        "delivery": "customer_file",
        "user_id_types": ["EMAIL"],
        "retention_days": 30,
    }
    repos.save_destination(env.store, destination.model_copy(update={"settings": settings}))
    return {pair for pair in env.expected() if pair[0] == "EMAIL_SHA256"}


def test_customer_file_lost_create_answer_adopts_the_audience(env: Env) -> None:
    expected = _customer_file(env)
    env.emulator.admin.set_faults(
        rate=0.0, codes=[], drop_response_rate=1.0, paths=["dmp/custom_audience/create/"]
    )
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    assert len(audiences(env)) == 1
    assert env.members() == expected


def test_customer_file_killed_after_create_then_fresh_run_after_churn(env: Env) -> None:
    _customer_file(env)
    killed = cli(env, "run", ORCH, crash_at="create:sent")
    assert killed.returncode == -9, killed.stderr
    apply_churn(env.workspace.sample_warehouse, fraction=0.1, seed=5)  # the adopted audience is stale
    fresh = cli(env, "run", ORCH, "--json")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert len(audiences(env)) == 1
    assert env.members() == {pair for pair in env.expected() if pair[0] == "EMAIL_SHA256"}


def test_retry_from_plan_after_a_kill_in_upload_starts_the_new_plan_afresh(env: Env) -> None:
    assert env.run().ok
    apply_churn(env.workspace.sample_warehouse, fraction=0.2, seed=6)
    killed = cli(env, "run", ORCH, "--batch-rows", "40", crash_at="upload:batch#4")
    assert killed.returncode == -9, killed.stderr
    apply_churn(env.workspace.sample_warehouse, fraction=0.2, seed=7)
    # Planned again: the batches the old plan confirmed say nothing of the new plan's batches.
    retried = cli(env, "workflows", "retry", latest(env), "--task", "prepare", "--json")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert env.members() == env.expected()
