"""The Python API (docs/python-api.md): `ttsync.Workspace` against a real workspace and the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import ttsync
from audience_env import ORCH, Env
from ttsync.store import repos


def test_run_plan_workflows_match_the_store(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(env.workspace.root)  # Workspace() finds the current folder, like the CLI
    ws = ttsync.Workspace()
    planned = ws.plan(ORCH)
    assert planned.status == "planned"
    assert planned.workflow_id is None
    assert planned.counts["plan"]["add_ids"] > 0

    result = ws.run(ORCH)
    assert result.ok
    stored = repos.get_workflow(env.store, str(result.workflow_id))
    assert (result.status, result.resolution) == (stored.state, None)
    assert result.counts["upload"]["added_ids"] == planned.counts["plan"]["add_ids"]
    assert result.counts["commit"]["snapshot_ids"] == len(env.members())

    (latest, *_) = ws.workflows(ORCH)
    assert latest.workflow_id == result.workflow_id
    assert latest.status == stored.state
    assert ws.run(ORCH, plan=True).counts["plan"]["add_ids"] == 0  # nothing left to send


def test_async_variants(env: Env) -> None:
    ws = ttsync.Workspace(env.workspace.root)

    async def main() -> tuple[ttsync.RunResult, list[ttsync.WorkflowSummary]]:
        result = await ws.arun(ORCH)
        return result, await ws.aworkflows()

    result, listed = asyncio.run(main())
    assert result.ok
    assert [w.workflow_id for w in listed] == [result.workflow_id]


def test_failed_run_raises_with_resolution_then_retry(env: Env) -> None:
    ws = ttsync.Workspace(env.workspace.root)
    # A real outage as the emulator serves it: system errors until ttsync's retries run out (~10 s).
    env.emulator.admin.set_faults(rate=1.0, codes=[50000], paths=["segment/mapping/"])
    with pytest.raises(ttsync.RunFailedError) as failed:
        ws.run(ORCH)
    assert failed.value.resolution == "tiktok_unavailable"
    assert failed.value.exit_code == 5
    assert failed.value.result.status == "failed"
    env.emulator.admin.clear_faults()
    retried = ws.retry(str(failed.value.result.workflow_id)[:8])
    assert retried.ok
    assert retried.workflow_id == failed.value.result.workflow_id


def test_configuration_errors_carry_the_resolution_key(env: Env, tmp_path: Path) -> None:
    ws = ttsync.Workspace(env.workspace.root)
    with pytest.raises(ttsync.ConfigurationError) as unknown:
        ws.run("no-such-orchestration")
    assert unknown.value.resolution == "configuration_error"
    assert unknown.value.exit_code == 2
    assert "no-such-orchestration" in str(unknown.value)
    with pytest.raises(ttsync.ConfigurationError):
        ttsync.Workspace(tmp_path / "missing").workflows()


def test_row_keys_match_the_stored_row_keys(env: Env) -> None:
    import duckdb
    import pyarrow.parquet as pq

    result = ttsync.Workspace(env.workspace.root).run(ORCH)
    ids = pq.read_table(
        env.workspace.state_dir / "runs" / str(result.workflow_id) / "prepared" / "ids.parquet"
    )
    stored = set(ids.column("row_key").to_pylist())
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        keys = [
            r[0]
            for r in con.execute(
                "SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= 500"
            ).fetchall()
        ]
    hashed = ttsync.Workspace(env.workspace.root).row_keys(keys)
    assert all(k.startswith("hk:") for k in hashed)  # UUID-shaped ids are keyed-hashed
    assert stored <= set(hashed)
    assert ttsync.Workspace(env.workspace.root).row_keys(["1234"]) == ["1234"]  # not identifier-like: as is


def test_refused_run_carries_workflow_running_and_exit_code_3(env: Env) -> None:
    from ttsync.store.leases import LeaseKeeper, orchestration_resource

    # Another process's workflow holding the orchestration's lease (a real lease in the real store).
    with LeaseKeeper(env.store, "other-workflow", timeout=30) as keeper:
        keeper.acquire(orchestration_resource(ORCH))
        with pytest.raises(ttsync.RunRefusedError) as refused:
            ttsync.Workspace(env.workspace.root).run(ORCH)
    assert refused.value.resolution == "workflow_running"
    assert refused.value.exit_code == 3
    assert "other-workflow" in str(refused.value)
    assert env.emulator.admin.state()["audiences"] in ({}, [])  # nothing was sent


def test_every_public_name_resolves() -> None:
    import ttsync.api

    for name in ttsync.__all__:
        assert getattr(ttsync, name) is getattr(ttsync.api, name, ttsync.__version__)
    assert set(ttsync.api.__all__) == set(ttsync.__all__) - {"__version__"}
