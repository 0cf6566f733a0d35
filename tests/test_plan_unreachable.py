"""`ttsync run --plan` with TikTok unreachable says it could not check the audience, never "new"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from audience_env import ORCH, Env


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on (bound then released)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/open_api/v1.3/"


def _plan(env: Env, *extra: str) -> subprocess.CompletedProcess[str]:
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | env.environ
    cli_env |= {"TTSYNC_WORKSPACE": str(env.workspace.root), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ttsync", "run", ORCH, "--plan", *extra],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("first_run_done", [False, True], ids=["no-audience-yet", "stored-audience"])
def test_plan_with_tiktok_unreachable(
    env: Env, monkeypatch: pytest.MonkeyPatch, first_run_done: bool
) -> None:
    if first_run_done:
        assert env.run().ok
    env.reapply(monkeypatch, TTSYNC_SANDBOX_URL=_dead_url())
    done = _plan(env, "--json")
    assert done.returncode == 0, done.stderr
    preview = json.loads(done.stdout)
    assert preview["audience"]["exists"] is None
    assert any("could not check" in w for w in preview["warnings"])
    shown = _plan(env)
    assert shown.returncode == 0, shown.stderr
    assert "new (created on first run)" not in shown.stdout
    assert "could not check" in shown.stdout
