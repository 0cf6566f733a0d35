"""A sample workspace wired to the emulator, for end-to-end tests of audience runs (used via the `env` fixture)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ttsync.app.runs import RunOutcome, build_run, start_run
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace, load_config
from ttsync.destinations.tiktok.pipelines.base import RunOptions
from ttsync.emulator.embedded import EmulatorServer
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.store import repos
from ttsync.store.db import Store

ORCH = "high-value-customers"
KINDS = {"email": ("email", "EMAIL_SHA256"), "phone": ("phone", "PHONE_SHA256"),
         "idfa": ("idfa", "IDFA_SHA256"), "aaid": ("aaid", "AAID_SHA256")}  # fmt: skip


@dataclass
class Env:
    workspace: Workspace
    store: Store
    emulator: EmulatorServer
    environ: dict[str, str]

    def run(self, **options: Any) -> RunOutcome:
        return start_run(build_run(self.workspace, self.store, ORCH, options=RunOptions(**options)))

    def audience_id(self) -> str:
        states = repos.get_audience_states(self.store, "tiktok-audiences", ORCH)
        assert len(states) == 1
        return states[0].audience_id

    def members(self, audience_id: str | None = None) -> set[tuple[str, str]]:
        got = self.emulator.admin.audience_members(audience_id or self.audience_id())
        return {(schema, h) for schema, hashes in got.items() for h in hashes}

    def expected(self) -> set[tuple[str, str]]:
        """Hash the segment row by row with the scalar API (independent of the vectorized path)."""
        query = repos.get_orchestration(self.store, ORCH).query
        with duckdb.connect(str(self.workspace.sample_warehouse), read_only=True) as con:
            rows = con.execute(query).fetchall()
            names = [d[0] for d in con.description]
        out: set[tuple[str, str]] = set()
        for row in rows:
            record = dict(zip(names, row, strict=True))
            for column, (kind, schema) in KINDS.items():
                value = record.get(column)
                if value is None:
                    continue
                with contextlib.suppress(InvalidIdentifier):
                    out.add((schema, hash_identifier(kind, str(value), region=record.get("country") or "US")))
        return out

    def reapply(self, monkeypatch: pytest.MonkeyPatch, **environ: str) -> None:
        """Change environment variables (e.g. a new token) and `ttsync apply` the config again."""
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
            self.environ[key] = value
        apply_config(self.store, load_config(self.workspace.config_path))


def make_env(emulator: EmulatorServer, root: Path, monkeypatch: pytest.MonkeyPatch, rows: int = 6_000) -> Env:
    """Init a workspace with the sample warehouse at `root`, point it at the emulator, apply its config."""
    seed = emulator.seed
    environ = {
        "TTSYNC_APP_SECRET": seed.app_secret,
        "TTSYNC_ACCESS_TOKEN": seed.operator_token,
        "TTSYNC_SANDBOX_URL": emulator.base_url,
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TTSYNC_STORE_URL", raising=False)
    monkeypatch.delenv("TTSYNC_SECRET_KEY", raising=False)
    monkeypatch.delenv("TTSYNC_WEBHOOK_URL", raising=False)
    workspace = init_workspace(root, sample=True, rows=rows, seed_info=seed.to_dict()).workspace
    store = workspace.open_store()
    apply_config(store, load_config(workspace.config_path))
    return Env(workspace, store, emulator, environ)
