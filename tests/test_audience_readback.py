"""read_back flags an audience larger than what this workspace ever sent; an audience that vanished mid-run
(e.g. the sandbox restarted) gets a resolution whose action really continues the workflow."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import duckdb

from audience_env import ORCH, Env
from ttsync.app.runs import build_run, continue_run
from ttsync.emulator.embedded import RawApi
from ttsync.store import repos
from ttsync.workflows.resolutions import Action, resolution_for


def test_read_back_warns_when_tiktok_holds_more_than_was_sent(env: Env) -> None:
    first = env.run()
    assert first.ok, first.workflow.error
    assert first.workflow.counts["read_back"].get("warnings", []) == []
    audience_id = env.audience_id()
    seed = env.emulator.seed
    # Another sender (or a reused id after a sandbox restart) puts people into "our" audience.
    foreign = [hashlib.sha256(f"someone-{i}@else.example".encode()).hexdigest() for i in range(40)]
    with RawApi(env.emulator, seed.operator_token) as api:
        body = {
            "advertiser_ids": [seed.advertiser_ids[0]],
            "id_schema": ["EMAIL_SHA256"],
            "batch_data": [[{"id": h, "audience_ids": [audience_id]}] for h in foreign],
        }
        assert api.post("segment/mapping/", body)["code"] == 0
    env.emulator.admin.advance_clock(6 * 3600)  # past the emulator's processing time
    second = env.run()
    assert second.ok, second.workflow.error
    read_back = second.workflow.counts["read_back"]
    warnings = read_back["warnings"]
    assert len(warnings) == 1
    assert audience_id in warnings[0]["message"]
    assert "more" in warnings[0]["message"]
    assert warnings[0]["serious"] is True
    assert read_back["tiktok_size"] > read_back["ids_sent"]
    assert second.workflow.state == "succeeded_with_warnings"
    notes = repos.list_notifications(env.store)
    assert any("succeeded with warnings" in n.title and audience_id in n.message for n in notes)
    # `workflows show` prints it too (plain output shows no lists in the counts column).
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | {"COLUMNS": "300"}
    shown = subprocess.run(
        [sys.executable, "-m", "ttsync", "workflows", "show", second.workflow.id[:8], "-w", str(env.workspace.root)],
        env=cli_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "(task read_back)" in shown.stdout
    assert audience_id in shown.stdout


def test_audience_gone_mid_run_resolves_by_restart(env: Env) -> None:
    assert env.run().ok
    admin = env.emulator.admin
    # The upload fails for another reason first (a refused request), so the workflow stops after verifying.
    admin.set_faults(rate=1.0, codes=[40000], paths=["segment/mapping/"])
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
        con.execute("UPDATE Merged_Customers SET lifetime_value = 0 WHERE hash(amperity_id) % 10 = 0")
    failed = env.run()
    assert not failed.ok
    assert failed.workflow.error is not None
    assert failed.workflow.error["task"] == "upload"
    admin.clear_faults()
    # Then the audience vanishes from TikTok (deleted, or the sandbox restarted without --state).
    admin.delete_audience(env.audience_id())
    again = continue_run(build_run(env.workspace, env.store, ORCH), failed.workflow.id, "retry")
    assert not again.ok
    assert again.workflow.error is not None
    key = again.workflow.error["resolution"]
    resolution = resolution_for(key)
    assert key == "audience_disappeared"
    assert resolution.action is Action.RESTART_WORKFLOW
    assert "customer-file" not in resolution.what + resolution.why
    # Following the resolution's action works.
    restarted = continue_run(
        build_run(env.workspace, env.store, ORCH), failed.workflow.id, resolution.action.value
    )
    assert restarted.ok, restarted.workflow.error
    assert env.members() == env.expected()


def test_mapping_into_a_vanished_audience_classifies_as_disappeared() -> None:
    from ttsync.destinations.tiktok.client import classify

    gone = "batch_data.0.0.audience_ids.0: Invalid audience ID 7123: the audience does not exist"
    assert classify(40002, gone).resolution_key == "audience_disappeared"
    assert classify(40002, "batch_data.0: Audience 7123 has expired").resolution_key == "audience_disappeared"
    assert resolution_for(classify(40002, gone).resolution_key).action is Action.RESTART_WORKFLOW
    assert classify(40002, "data.0.event_id: Not a valid string").resolution_key == "invalid_request"
