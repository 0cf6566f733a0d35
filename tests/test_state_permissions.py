"""The state folder is private: 0700 folders, 0600 files, for everything ttsync writes there (real runs)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from audience_env import make_env
from ttsync.app.workspace.layout import Workspace
from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.ledger import Ledger


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """Start from the common umask 022 (files 0644, folders 0755), as a fresh shell would."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(state: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(state.stat().st_mode)}
    for path in state.rglob("*"):
        if not path.is_symlink():
            modes[str(path.relative_to(state))] = stat.S_IMODE(path.stat().st_mode)
    return modes


def _assert_private(state: Path) -> None:
    modes = _modes(state)
    too_open = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert not too_open, too_open
    for path, mode in modes.items():
        expected = 0o700 if (state / path).is_dir() else 0o600
        assert mode == expected, (path, oct(mode))


def test_state_of_a_run_is_private(
    usual_umask: None, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(emulator, tmp_path / "ws", monkeypatch, rows=1_500)
    state = env.workspace.state_dir
    try:
        outcome = env.run()
        assert outcome.ok, outcome.workflow.error
        # Checked while the store and the ledger are open: SQLite removes -wal and -shm files on close.
        with Ledger.open(state) as ledger:
            assert ledger.count() == 0
            modes = _modes(state)
            # The store with its write-ahead log, the ledger, a run folder with Parquet files, a snapshot.
            assert {"ttsync.db", "secret.key", "ledger/events.sqlite"} <= set(modes)
            assert {"ttsync.db-wal", "ttsync.db-shm", "ledger/events.sqlite-wal"} <= set(modes)
            assert any(p.startswith("runs/") and p.endswith(".parquet") for p in modes)
            assert any("snapshot" in p for p in modes)
            _assert_private(state)
    finally:
        env.store.close()
    _assert_private(state)


def test_an_open_state_folder_is_tightened_when_the_workspace_is_opened(
    usual_umask: None, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(emulator, tmp_path / "ws", monkeypatch, rows=200)
    env.store.close()
    state = env.workspace.state_dir
    # As an earlier version left it: 0755 folders, 0644 files.
    (state / "runs" / "old").mkdir(parents=True)
    (state / "runs" / "old" / "ids.parquet").write_bytes(b"x")
    for path in [state, *state.rglob("*")]:
        if path.name != "secret.key":
            path.chmod(0o755 if path.is_dir() else 0o644)
    Workspace(env.workspace.root).open_store().close()
    _assert_private(state)
