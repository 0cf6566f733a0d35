"""The README's first command: `ttsync quickstart` as a real process, on embedded defaults."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb


def test_quickstart_syncs_changes_and_sends_events(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttsync", "quickstart", "--rows", "8000", "--dir", str(tmp_path / "qs"), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["ok"] is True
    first, second = data["runs"]
    assert first["counts"]["plan"]["full_upload"] is True
    assert second["counts"]["upload"]["added_ids"] > 0
    assert second["counts"]["upload"]["removed_ids"] > 0
    # What the emulator holds after each run is what the run says TikTok holds.
    assert data["emulator_members_after_each_run"] == [
        run["counts"]["commit"]["snapshot_ids"] for run in data["runs"]
    ]
    assert data["events"]["counts"]["deliver"]["sent"] == data["emulator_events_received"] > 0
    # No raw identifier from the warehouse appears in anything the command printed.
    with duckdb.connect(str(tmp_path / "qs" / "warehouse.duckdb"), read_only=True) as con:
        emails = "SELECT trim(email) FROM Merged_Customers WHERE email LIKE '%@%'"
        phones = (
            "SELECT phone FROM Merged_Customers WHERE length(regexp_replace(phone, '[^0-9]', '', 'g')) >= 7"
        )
        raw = [row[0] for row in con.execute(emails).fetchall() + con.execute(phones).fetchall()]
    printed = result.stdout + result.stderr
    assert len(raw) > 1_000
    assert not [value for value in raw if value and value in printed]


def test_quickstart_look_next_commands_run_as_printed(tmp_path: Path) -> None:
    """Each "Look next" line is a command that works when pasted, on a narrow terminal and a path with a space."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | {"COLUMNS": "50"}
    folder = tmp_path / "my quickstart"
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", "quickstart", "--rows", "1500", "--dir", str(folder)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    after = done.stdout.split("Look next:", 1)[1]
    commands = [line.strip() for line in after.splitlines() if line.strip()]
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command, comments=True)
        if words[0] == "ttsync":
            words = [sys.executable, "-m", "ttsync", *words[1:]]
        ran = subprocess.run(words, env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, (command, ran.stderr)
        assert ran.stdout.strip(), command


def test_quickstart_in_process_passes_secrets_and_url_as_arguments(tmp_path: Path) -> None:
    # A web handler calls the same use-case: it must not export the emulator's tokens into the process.
    from ttsync.app.quickstart import run_quickstart

    before = dict(os.environ)
    result = run_quickstart(directory=tmp_path / "ws", rows=400)
    assert result.ok, result.to_dict()
    assert dict(os.environ) == before
    assert len(result.runs) == 2
    assert result.events is not None
    assert result.events_received > 0
