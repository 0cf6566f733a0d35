"""`ttsync workflows ...` as a real subprocess: whole ids when piped, unique prefixes, clear unknown-id errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace, load_config
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import repos

FIRST = "abcd1234" + "0" * 24
SECOND = "abcd5678" + "1" * 24
OTHER = "ef01" + "2" * 28


def _ttsync(
    *args: str, cwd: Path, columns: int = 60, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | {"COLUMNS": str(columns)}
    env |= environ or {}
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wf") / "ws"
    done = _ttsync("init", str(root), cwd=root.parent)
    assert done.returncode == 0, done.stderr
    with Workspace(root).open_store() as store:
        for wid in (FIRST, SECOND, OTHER):
            repos.create_workflow(store, "high-value-customers", "audience", ["query"], workflow_id=wid)
    return root


def test_list_prints_whole_ids_when_piped_and_narrow(workspace: Path) -> None:
    done = _ttsync("workflows", "list", cwd=workspace, columns=40)
    assert done.returncode == 0, done.stderr
    for wid in (FIRST, SECOND, OTHER):
        assert wid in done.stdout
    assert "…" not in done.stdout


def test_show_accepts_a_unique_prefix(workspace: Path) -> None:
    done = _ttsync("workflows", "show", "abcd12", "--json", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == FIRST
    full = _ttsync("workflows", "show", OTHER, "--json", cwd=workspace)
    assert json.loads(full.stdout)["id"] == OTHER


def test_ambiguous_prefix_lists_the_matches(workspace: Path) -> None:
    done = _ttsync("workflows", "show", "abcd", cwd=workspace, columns=200)
    assert done.returncode == 2
    assert "ambiguous" in done.stderr
    assert FIRST in done.stderr
    assert SECOND in done.stderr
    retry = _ttsync("workflows", "retry", "abcd", cwd=workspace, columns=200)
    assert retry.returncode == 2
    assert "ambiguous" in retry.stderr


def test_unknown_id_does_not_point_at_the_config_file(workspace: Path) -> None:
    for command in ("show", "retry", "restart", "resolve"):
        done = _ttsync("workflows", command, "0badc0de", cwd=workspace, columns=200)
        assert done.returncode == 2, command
        assert "does not exist" in done.stderr
        assert "ttsync workflows list" in done.stderr
        assert "ttsync.yaml" not in done.stderr
    short = _ttsync("workflows", "show", "ab", cwd=workspace, columns=200)
    assert short.returncode == 2  # too short to be a prefix: not guessed


EVENTS_ORCH = "store-purchases-last-7-days"


def test_retry_of_a_later_task_does_not_mark_the_workflow_succeeded(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """`retry --task X` past the failed task: refused (the failed task never ran again), the workflow stays
    failed and nothing is sent; a plain retry then runs every task and only then succeeds."""
    seed = emulator.seed
    init = init_workspace(tmp_path / "ws", sample=True, rows=300, seed_info=seed.to_dict())
    environ = {
        "TTSYNC_APP_SECRET": seed.app_secret,
        "TTSYNC_ACCESS_TOKEN": seed.operator_token,
        "TTSYNC_SANDBOX_URL": emulator.base_url,
    }
    with init.workspace.open_store() as store:
        apply_config(store, load_config(init.workspace.config_path, environ=environ), environ=environ)
    root = init.workspace.root
    # The event-set check fails (TikTok refuses the request); the query task before it succeeds.
    emulator.admin.set_faults(rate=1.0, codes=[40002], paths=["offline/get/"])
    try:
        failed = _ttsync("run", EVENTS_ORCH, "--json", cwd=root, environ=environ)
    finally:
        emulator.admin.clear_faults()
    assert failed.returncode != 0
    workflow = json.loads(failed.stdout)
    assert workflow["error"]["task"] == "verify_event_set", workflow["error"]

    later = _ttsync(
        "workflows", "retry", workflow["id"], "--task", "deliver", cwd=root, environ=environ, columns=200
    )
    assert later.returncode == 2, later.stdout + later.stderr
    assert "verify_event_set" in later.stderr
    assert "Traceback" not in later.stderr
    shown = json.loads(
        _ttsync("workflows", "show", workflow["id"], "--json", cwd=root, environ=environ).stdout
    )
    assert shown["state"] == "failed"
    assert {t["name"]: t["state"] for t in shown["tasks"]}["verify_event_set"] == "failed"
    assert emulator.admin.events(seed.event_set_id) == []

    retried = _ttsync("workflows", "retry", workflow["id"], "--json", cwd=root, environ=environ)
    assert retried.returncode == 0, retried.stderr
    done = json.loads(retried.stdout)
    assert done["state"] == "succeeded"
    assert all(t["state"] == "succeeded" for t in done["tasks"])
    assert len(emulator.admin.events(seed.event_set_id)) == done["counts"]["deliver"]["sent"] > 0
