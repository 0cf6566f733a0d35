"""`ttsync quickstart`: the main job on embedded defaults, with nothing configured.

It creates a temporary workspace with the sample warehouse, starts the emulator (the sandbox environment) on
a free loopback port, syncs an audience from a SQL segment, changes the warehouse and syncs again (so the
second run shows adds and removes), and returns what happened plus where to look next.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsync.app.runs import RunOutcome, build_run, start_run
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace, load_config
from ttsync.destinations.tiktok.pipelines.audience import Reporter, RunOptions
from ttsync.emulator.embedded import EmulatorServer
from ttsync.sample import apply_churn
from ttsync.writeback.stored import save_writeback

ORCHESTRATION = "high-value-customers"
EVENTS_ORCHESTRATION = "store-purchases-last-7-days"


@dataclass
class QuickstartResult:
    """The two runs of the quickstart and the workspace they left behind."""

    workspace: Path
    runs: list[RunOutcome] = field(default_factory=list)
    events: RunOutcome | None = None
    events_received: int = 0
    churn: dict[str, int] = field(default_factory=dict)
    emulator_members: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every run succeeded."""
        return (
            bool(self.runs) and all(run.ok for run in self.runs) and (self.events is None or self.events.ok)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`."""
        return {
            "ok": self.ok,
            "workspace": str(self.workspace),
            "churn": self.churn,
            "emulator_members_after_each_run": self.emulator_members,
            "runs": [run.to_dict() for run in self.runs],
            "events": self.events.to_dict() if self.events else None,
            "emulator_events_received": self.events_received,
        }


def run_quickstart(
    *, directory: Path | None = None, rows: int = 20_000, reporter: Reporter | None = None
) -> QuickstartResult:
    """Run the whole quickstart; the workspace stays on disk for the user to explore."""
    reporter = reporter or Reporter()
    root = directory or Path(tempfile.mkdtemp(prefix="ttsync-quickstart-"))
    result = QuickstartResult(workspace=root)
    with EmulatorServer(seed="demo") as emulator:
        seed = emulator.seed
        reporter.note(f"emulator (sandbox) listening on {emulator.root_url}")
        # The emulator's secrets and URL travel as arguments: the config is read against this mapping (the
        # file names the variables), and the sandbox credentials get the emulator's URL. Nothing is exported.
        environ = {
            **os.environ,
            "TTSYNC_APP_SECRET": seed.app_secret,
            "TTSYNC_ACCESS_TOKEN": seed.operator_token,
        }
        # With write-back on: each run's results also land in the sample warehouse (schema `ttsync`).
        init = init_workspace(
            root, sample=True, rows=rows, seed_info=seed.to_dict(), force=True, writeback=True
        )
        reporter.note(f"workspace {root} with a sample warehouse of {init.sample_counts} rows")
        workspace = Workspace(root)
        config = load_config(workspace.config_path, environ=environ)
        for credential in config.credentials:
            if credential.environment == "sandbox" and not credential.sandbox_base_url:
                credential.sandbox_base_url = emulator.base_url
        with workspace.open_store() as store:
            apply_config(store, config, environ=environ)
            save_writeback(workspace.state_dir, config.writeback)
            for attempt in range(2):
                if attempt == 1:
                    result.churn = apply_churn(workspace.sample_warehouse, fraction=0.05)
                    reporter.note(
                        f"changed the warehouse: {result.churn.get('left_segment', 0)} people left the "
                        f"segment, {result.churn.get('joined_segment', 0)} joined"
                    )
                run = build_run(workspace, store, ORCHESTRATION, options=RunOptions(), reporter=reporter)
                outcome = start_run(run)
                result.runs.append(outcome)
                if not outcome.ok:
                    break
                audience_id = outcome.workflow.counts.get("verify_audience", {}).get("audience_id")
                if audience_id:
                    members = emulator.admin.audience_members(str(audience_id))
                    result.emulator_members.append(sum(len(v) for v in members.values()))
            if result.runs and result.runs[-1].ok:
                # Offline events: the last 7 days of store purchases, sent once each.
                events_run = build_run(workspace, store, EVENTS_ORCHESTRATION, reporter=reporter)
                result.events = start_run(events_run)
                result.events_received = len(emulator.admin.events(seed.event_set_id))
    return result
