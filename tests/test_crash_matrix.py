"""The crash matrix (issue 10): a real `ttsync run` process dies by SIGKILL at a named point of every task, and
the next run starts in turn by `workflows retry`, by a fresh `ttsync run`, and by a fresh run followed by a
retry of the superseded workflow (refused). The warehouse churns between runs and ~10% of requests fail
(retryable codes); the very first create's answer is lost after TikTok created the audience. After every
successful run the emulator's audience equals the query's hashes exactly, with one audience only and no
in-flight record left behind.

Small data set (1,500 customers) and small batches, so the whole matrix stays within about a minute.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from audience_env import ORCH, Env, make_env
from ttsync.audiences.inflight import inflight_dir, inflight_files
from ttsync.emulator.testing import EmulatorServer
from ttsync.sample import apply_churn
from ttsync.store import repos
from ttsync.workflows.crashpoints import CRASH_ENV

# Every task has at least one point; upload and commit also die between their own steps.
POINTS = (
    "before:query",
    "before:prepare",
    "before:verify_audience",
    "before:plan",
    "upload:inflight",
    "upload:batch#2",
    "before:commit",
    "commit:snapshot",
    "before:read_back",
    "after:read_back",
)
FOLLOW_UPS = ("retry", "run", "superseded")


@pytest.fixture
def small_env(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    made = make_env(emulator, tmp_path / "ws", monkeypatch, rows=1_500)
    try:
        yield made
    finally:
        made.store.close()


class Matrix:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.churns = itertools.count(100)

    def ttsync(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        environ = os.environ | self.env.environ | {"TTSYNC_WORKSPACE": str(self.env.workspace.root)}
        environ.pop(CRASH_ENV, None)
        if crash_at:
            environ[CRASH_ENV] = crash_at
        return subprocess.run(
            [sys.executable, "-m", "ttsync", *args], env=environ, capture_output=True, text=True, timeout=180
        )

    def killed_run(self, point: str) -> str:
        """A run that dies at `point`; returns its workflow id."""
        result = self.ttsync("run", ORCH, "--batch-rows", "30", crash_at=point)
        assert result.returncode == -9, f"{point}: the run was not killed: {result.stdout}{result.stderr}"
        return repos.list_workflows(self.env.store, orchestration=ORCH, limit=1)[0].id

    def succeeds(self, *args: str) -> None:
        result = self.ttsync(*args)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        self.converged(" ".join(args))

    def churn(self) -> None:
        apply_churn(self.env.workspace.sample_warehouse, fraction=0.1, seed=next(self.churns))

    def converged(self, after: str) -> None:
        env = self.env
        named = [
            a for a in env.emulator.admin.state()["audiences"] if a.get("name") == "High value customers"
        ]
        assert len(named) == 1, f"after {after}: {len(named)} audiences"
        members, expected = env.members(), env.expected()
        assert members == expected, (
            f"after {after}: {len(members - expected)} stale, {len(expected - members)} missing"
        )
        records = inflight_files(inflight_dir(env.workspace.state_dir, f"tiktok-audiences__{ORCH}"))
        assert records == [], f"after {after}: in-flight records left: {records}"


def test_crash_matrix(small_env: Env) -> None:
    matrix = Matrix(small_env)
    admin = small_env.emulator.admin
    # The first create is applied by TikTok but its answer is lost; the process then dies before storing it.
    admin.set_faults(rate=0.0, codes=[], drop_response_rate=1.0, paths=["segment/audience/"])
    first = matrix.killed_run("create:sent")
    admin.set_faults(rate=0.1, codes=[50002, 40100], seed=1)  # ~10% retryable failures from here on
    matrix.succeeds("run", ORCH)
    assert repos.get_workflow(small_env.store, first).state == "superseded"

    for i, point in enumerate(POINTS):
        follow_up = FOLLOW_UPS[i % len(FOLLOW_UPS)]
        admin.set_faults(rate=0.1, codes=[50002, 40100], seed=10 + i)
        matrix.churn()
        killed = matrix.killed_run(point)
        if follow_up == "retry":
            matrix.succeeds("workflows", "retry", killed)
            continue
        matrix.churn()  # the query changes after the killed run: the fresh run must follow it
        matrix.succeeds("run", ORCH)
        if follow_up == "superseded":
            refused = matrix.ttsync("workflows", "retry", killed)
            assert refused.returncode == 4, f"{point}: {refused.stdout}{refused.stderr}"
            assert "superseded" in refused.stderr
            matrix.converged(f"the refused retry after {point}")

    # Crashes in a row: killed in upload, its retry killed in upload again, then a fresh run.
    matrix.churn()
    killed = matrix.killed_run("upload:batch#2")
    again = matrix.ttsync("workflows", "retry", killed, crash_at="upload:batch#1")
    assert again.returncode == -9
    matrix.churn()
    matrix.succeeds("run", ORCH)
