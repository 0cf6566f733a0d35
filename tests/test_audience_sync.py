"""The main job end to end: a SQL segment over the sample DuckDB warehouse becomes an audience in the emulator.

The expected membership is computed independently of the vectorized pipeline: the query is read row by row
and each value is hashed with the scalar identity API, so a mistake in the fast path is caught here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from audience_env import ORCH, Env, make_env
from ttsync.app.runs import build_run, continue_run, preview_run
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.layout import load_config
from ttsync.destinations.tiktok.audience.audience import PROCESSING_STATE
from ttsync.destinations.tiktok.pipelines.audience import RunOptions
from ttsync.emulator.embedded import EmulatorServer
from ttsync.emulator.variants import VARIANTS
from ttsync.identity.digests import HEX_SQL
from ttsync.sample import apply_churn
from ttsync.store import repos


def test_sync_then_resync_mirrors_the_query(env: Env) -> None:
    first = env.run()
    assert first.ok, first.workflow.error
    expected = env.expected()
    assert len(expected) > 1_000
    assert env.members() == expected
    assert first.workflow.counts["upload"]["added_ids"] == len(expected)
    assert first.workflow.counts["read_back"]["tiktok_size"] == len(expected)

    churn = apply_churn(env.workspace.sample_warehouse, fraction=0.05)
    assert churn["left_segment"] > 0
    assert churn["joined_segment"] > 0
    second = env.run()
    assert second.ok, second.workflow.error
    new_expected = env.expected()
    assert env.members() == new_expected
    upload = second.workflow.counts["upload"]
    # Exactly the changed identifiers were sent.
    assert upload["added_ids"] == len(new_expected - expected)
    assert upload["removed_ids"] == len(expected - new_expected)
    assert second.workflow.counts["verify_audience"]["created"] is False
    # The snapshot is what TikTok now holds, as hashes only (no row keys).
    (snapshot,) = (env.workspace.state_dir / "snapshots").rglob("*.parquet")
    with duckdb.connect() as con:
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM '{snapshot}'").fetchall()]
        held = con.execute(f"SELECT DISTINCT id_schema, {HEX_SQL} FROM '{snapshot}'").fetchall()
    assert columns == ["id_schema", "k1", "k2", "k3", "k4"]
    assert set(held) == new_expected


def test_plan_sends_nothing(env: Env) -> None:
    preview = preview_run(build_run(env.workspace, env.store, ORCH))
    assert preview["plan"]["add_ids"] == len(env.expected())
    assert preview["plan"]["remove_ids"] == 0
    assert (
        "invalid_email" in preview["rejected_by_reason"] or "invalid_phone" in preview["rejected_by_reason"]
    )
    assert env.emulator.admin.state()["audiences"] == [] or all(
        a.get("owner_id") not in env.emulator.seed.advertiser_ids or a.get("name") != "High value customers"
        for a in env.emulator.admin.state()["audiences"]
    )
    assert repos.get_audience_states(env.store, "tiktok-audiences", ORCH) == []


def test_deleted_audience_is_recreated_and_uploaded_in_full(env: Env) -> None:
    assert env.run().ok
    old = env.audience_id()
    env.emulator.admin.delete_audience(old)
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    new = env.audience_id()
    assert new != old
    assert outcome.workflow.counts["verify_audience"]["recreated"] is True
    assert env.members(new) == env.expected()
    titles = [n.title for n in repos.list_notifications(env.store)]
    assert any("audience recreated" in t for t in titles)


def test_remove_guard_blocks_then_resolve_continues(env: Env) -> None:
    assert env.run().ok
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
        con.execute("UPDATE Merged_Customers SET lifetime_value = 0 WHERE hash(amperity_id) % 10 < 8")
    blocked = env.run()
    assert not blocked.ok
    assert blocked.workflow.error is not None
    assert blocked.workflow.error["resolution"] == "large_removal_blocked"
    assert blocked.workflow.error["task"] == "plan"
    before = env.members()
    assert len(before) > len(env.expected())  # nothing was removed
    notes = repos.list_notifications(env.store)
    assert notes[0].resolution == "large_removal_blocked"
    # The user decides the removal is intended: resolve with the guard lifted.
    resolved = continue_run(
        build_run(env.workspace, env.store, ORCH, options=RunOptions(allow_large_removal=True)),
        blocked.workflow.id,
        "resolve",
    )
    assert resolved.ok, resolved.workflow.error
    assert env.members() == env.expected()


def test_analyst_token_fails_with_missing_permissions(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSYNC_ACCESS_TOKEN", env.emulator.seed.analyst_token)
    apply_config(env.store, load_config(env.workspace.config_path))
    outcome = env.run()
    assert not outcome.ok
    assert outcome.workflow.error is not None
    assert outcome.workflow.error["resolution"] == "missing_advertiser_permissions"
    assert env.emulator.seed.analyst_token not in json.dumps(outcome.to_dict())


def test_killed_mid_upload_then_retry_converges(env: Env) -> None:
    """Kill a real `ttsync run` process in the middle of the upload, retry the workflow, compare."""
    admin = env.emulator.admin
    cli_env = os.environ | env.environ | {"TTSYNC_WORKSPACE": str(env.workspace.root)}
    # Small batches and added latency so the upload takes several seconds and the kill lands inside it.
    admin.set_faults(rate=0.0, codes=[50002], latency_ms=200)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttsync", "run", ORCH, "--batch-rows", "10", "--json"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workflows = repos.list_workflows(env.store)
            if workflows:
                wf = repos.get_workflow(env.store, workflows[0].id)
                upload = next(t for t in wf.tasks if t.name == "upload")
                if upload.checkpoint.get("mapping", {}).get("added"):
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the upload never started")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    admin.clear_faults()
    partial = env.members()
    expected = env.expected()
    assert partial < expected  # some but not all were delivered
    wf = repos.list_workflows(env.store)[0]
    assert wf.state == "running"  # the killed process never finished it
    result = subprocess.run(
        [sys.executable, "-m", "ttsync", "workflows", "retry", wf.id, "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    upload_counts = next(t for t in data["tasks"] if t["name"] == "upload")["counts"]
    assert upload_counts["batches_skipped"] > 0  # confirmed batches were not sent again
    assert env.members() == expected


def test_customer_file_delivery_mirrors_the_query(env: Env) -> None:
    destination = repos.get_destination(env.store, "tiktok-audiences")
    settings = destination.settings | {
        "delivery": "customer_file",
        "user_id_types": ["EMAIL"],
        "retention_days": 30,
    }
    repos.save_destination(env.store, destination.model_copy(update={"settings": settings}))

    def expected_emails() -> set[tuple[str, str]]:
        return {pair for pair in env.expected() if pair[0] == "EMAIL_SHA256"}

    first = env.run()
    assert first.ok, first.workflow.error
    audience_id = env.audience_id()
    assert env.members(audience_id) == expected_emails()
    assert env.emulator.admin.audience(audience_id)["calculate_type"] == "EMAIL_SHA256"

    apply_churn(env.workspace.sample_warehouse, fraction=0.05)
    second = env.run()
    assert second.ok, second.workflow.error
    assert env.audience_id() == audience_id
    assert env.members(audience_id) == expected_emails()


# Each variant that changes an audience endpoint alone, then every variant at once (two sets, since the two
# 40002 formats exclude each other): the event-only variants must not disturb audience runs either.
_AUDIENCE_VARIANTS = ("short-rows", "no-trailing-slash", "get-missing-40002", "mapping-limit-1000")
_VARIANT_SETS = [
    [],
    *([v] for v in _AUDIENCE_VARIANTS),
    [v for v in VARIANTS if v != "error-batch-index"],
    [v for v in VARIANTS if v != "error-field-only"],
]


@pytest.mark.parametrize("variants", _VARIANT_SETS, ids=lambda v: "+".join(v) if len(v) < 3 else "all")
def test_every_emulator_variant_converges_to_the_same_audience(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variants: list[str]
) -> None:
    """First sync, a re-sync after churn, and a recreate after the audience was deleted in TikTok, against
    each behaviour variant (where TikTok's sources disagree): the audience always ends equal to the query."""
    emulator.admin.set_variants(variants)
    env = make_env(emulator, tmp_path / "ws", monkeypatch)
    try:
        first = env.run()
        assert first.ok, first.workflow.error
        assert env.members() == env.expected()
        people = first.workflow.counts["plan"]["current_people"]
        assert people > 1_000  # more than one request's worth under `mapping-limit-1000`
        assert first.workflow.counts["read_back"]["state"] in ("ready", PROCESSING_STATE)

        apply_churn(env.workspace.sample_warehouse, fraction=0.05)
        second = env.run()
        assert second.ok, second.workflow.error
        assert second.workflow.counts["verify_audience"]["created"] is False
        assert env.members() == env.expected()

        old = env.audience_id()
        emulator.admin.delete_audience(old)
        third = env.run()
        assert third.ok, third.workflow.error
        assert third.workflow.counts["verify_audience"]["recreated"] is True
        assert env.audience_id() != old
        assert env.members() == env.expected()
    finally:
        env.store.close()


def test_first_sync_sends_right_after_create_without_waiting_for_is_valid(env: Env) -> None:
    """An empty partner audience reads is_valid false until members arrive (ref §9): the first sync must not
    wait for it. A new audience that is still being created answers 40201 "not ready"; the upload resumes."""
    env.emulator.admin.set_processing_delay(1.5)
    outcome = env.run(ready_timeout_seconds=60)
    assert outcome.ok, outcome.workflow.error
    assert env.members() == env.expected()
    assert outcome.workflow.counts["read_back"]["state"] == "ready"
    assert outcome.workflow.counts["read_back"]["is_valid"] is True


def test_plan_of_a_deleted_audience_warns_and_plans_everyone_without_changing_anything(env: Env) -> None:
    # `run --plan` runs the workflow's own verify_audience and plan tasks in a dry run: a gone audience is
    # reported (not recreated), its snapshot is not diffed against, and nothing is stored.
    assert env.run().ok
    old = env.audience_id()
    env.emulator.admin.delete_audience(old)
    workflows = repos.list_workflows(env.store)
    preview = preview_run(build_run(env.workspace, env.store, ORCH))
    assert preview["audience"]["audience_id"] == old
    assert preview["audience"]["exists"] is False
    assert any(f"audience {old} is gone from TikTok" in w for w in preview["warnings"])
    assert preview["plan"]["add_ids"] == len(env.expected())
    assert preview["plan"]["remove_ids"] == 0
    assert [w.id for w in repos.list_workflows(env.store)] == [w.id for w in workflows]
    assert env.audience_id() == old  # the stored audience is untouched until a real run recreates it
