"""Offline events through `ttsync run`: the seed's CompletePayment query over the sample warehouse, delivered
to the emulator once, and not again on a second run (the ledger)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttsync.app.runs import build_run, preview_run, start_run
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import load_config
from ttsync.emulator.embedded import EmulatorServer
from ttsync.emulator.variants import VARIANTS
from ttsync.store import repos

ORCH = "store-purchases-last-7-days"


@pytest.fixture
def workspace(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    seed = emulator.seed
    monkeypatch.setenv("TTSYNC_APP_SECRET", seed.app_secret)
    monkeypatch.setenv("TTSYNC_ACCESS_TOKEN", seed.operator_token)
    monkeypatch.setenv("TTSYNC_SANDBOX_URL", emulator.base_url)
    monkeypatch.delenv("TTSYNC_STORE_URL", raising=False)
    monkeypatch.delenv("TTSYNC_SECRET_KEY", raising=False)
    init = init_workspace(tmp_path / "ws", sample=True, rows=2_000, seed_info=seed.to_dict())
    with init.workspace.open_store() as store:
        apply_config(store, load_config(init.workspace.config_path))
    return init.workspace.root


# Each variant of the emulator's event endpoints alone (where TikTok's sources disagree), then every variant
# at once (two sets: the two 40002 formats exclude each other): the same events arrive once each under all.
_EVENT_VARIANTS = ("partner-name-registered", "error-field-only", "error-batch-index", "strict-properties")
_VARIANT_SETS = [
    [],
    *([v] for v in _EVENT_VARIANTS),
    [v for v in VARIANTS if v != "error-batch-index"],
    [v for v in VARIANTS if v != "error-field-only"],
]


@pytest.mark.parametrize("variants", _VARIANT_SETS, ids=lambda v: "+".join(v) if len(v) < 3 else "all")
def test_events_are_sent_once_across_runs(
    emulator: EmulatorServer, workspace: Path, variants: list[str]
) -> None:
    from ttsync.app.workspace.layout import Workspace

    emulator.admin.set_variants(variants, partner_names=["Acme"])

    ws = Workspace(workspace)
    with ws.open_store() as store:
        preview = preview_run(build_run(ws, store, ORCH))
        planned = preview["totals"]["planned"]
        assert planned > 0
        assert emulator.admin.events(emulator.seed.event_set_id) == []

        first = start_run(build_run(ws, store, ORCH))
        assert first.ok, first.workflow.error
        deliver = first.workflow.counts["deliver"]
        assert deliver["sent"] == planned
        received = emulator.admin.events(emulator.seed.event_set_id)
        assert len({e["event_id"] for e in received}) == planned
        assert all(e["event"] == "CompletePayment" for e in received)

        second = start_run(build_run(ws, store, ORCH))
        assert second.ok, second.workflow.error
        assert second.workflow.counts["deliver"]["sent"] == 0
        assert second.workflow.counts["deliver"]["duplicate_skipped"] == planned
        assert len(emulator.admin.events(emulator.seed.event_set_id)) == len(received)
        assert [t.name for t in second.workflow.tasks] == ["query", "verify_event_set", "deliver"]


def test_missing_event_set_is_a_resolution(emulator: EmulatorServer, workspace: Path) -> None:
    from ttsync.app.workspace.layout import Workspace

    ws = Workspace(workspace)
    with ws.open_store() as store:
        template = repos.get_template(store, "store-purchases")
        repos.save_template(
            store, template.model_copy(update={"settings": {"event_set_id": "1234567890123456789"}})
        )
        outcome = start_run(build_run(ws, store, ORCH))
    assert not outcome.ok
    assert outcome.workflow.error is not None
    assert outcome.workflow.error["resolution"] == "event_set_not_found"
    assert outcome.workflow.error["task"] == "verify_event_set"


def test_plan_cli_json(emulator: EmulatorServer, workspace: Path) -> None:
    env = os.environ | {"TTSYNC_WORKSPACE": str(workspace)}
    result = subprocess.run(
        [sys.executable, "-m", "ttsync", "run", ORCH, "--plan", "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["planned"] > 0
    assert emulator.admin.events(emulator.seed.event_set_id) == []
