"""A TikTok outage reads as one line per retry episode (what, attempt n of m, next in s), not as raw
`stamina.retry_scheduled` records; the full detail appears with `ttsync -v` (issue 10, section 3)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stamina.instrumentation import set_on_retry_hooks

from audience_env import ORCH, Env
from ttsync.cli.main import setup_logging
from ttsync.notify import deliver_webhook
from ttsync.store import Store, repos
from ttsync.store.db import sqlite_url
from ttsync.tiktok import AsyncTikTokClient, LimiterRegistry, RetryPolicy, TikTokError


def _dead_url() -> str:
    # A loopback port that was free a moment ago: connections to it are refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/open_api/v1.3/"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ttsync_level = logging.getLogger("ttsync").level
    httpx_level = logging.getLogger("httpx2").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("ttsync").setLevel(ttsync_level)
    logging.getLogger("httpx2").setLevel(httpx_level)
    set_on_retry_hooks(None)  # stamina's default again


def _outage(concurrent: int) -> None:
    """`concurrent` requests in flight while TikTok is unreachable; each retries twice, then fails."""

    async def go() -> list[object]:
        client = AsyncTikTokClient(
            access_token="token",
            base_url=_dead_url(),
            limiters=LimiterRegistry(),
            retry=RetryPolicy(max_attempts=3, wait_initial=0.05, wait_max=0.05, wait_jitter=0.0),
        )
        async with client:
            calls = [client.list_custom_audiences("7000000000000000001") for _ in range(concurrent)]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(go())
    assert all(isinstance(r, TikTokError) for r in results)


def test_concurrent_retries_read_as_one_line_per_attempt(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(verbose=False)
    _outage(concurrent=8)
    lines = capsys.readouterr().err.splitlines()
    assert "stamina.retry_scheduled" not in "\n".join(lines)
    retry_lines = [line for line in lines if "attempt" in line]
    assert len(retry_lines) == 2, lines  # 8 requests x 2 retries, said once per attempt
    assert retry_lines[0].startswith("TikTok dmp/custom_audience/list/ did not answer (ConnectError)")
    assert "attempt 1 of 3 failed, next in 0.1s" in retry_lines[0]
    assert "attempt 2 of 3 failed" in retry_lines[1]


def test_verbose_shows_every_retry_in_full(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(verbose=True)
    _outage(concurrent=2)
    err = capsys.readouterr().err
    assert err.count("retry detail:") == 4  # every retry of every request
    assert "caused_by=RetryableError(" in err
    assert "WARNING ttsync.retry: TikTok dmp/custom_audience/list/" in err


def test_cli_outage_is_readable(env: Env) -> None:
    environ = os.environ | env.environ | {"TTSYNC_SANDBOX_URL": _dead_url()}
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", "run", ORCH, "-w", str(env.workspace.root)],
        env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 5  # TikTok unavailable: the scheduler may retry later (README, "Exit codes")
    assert "stamina" not in done.stderr
    assert "Traceback" not in done.stderr
    retry_lines = [line for line in done.stderr.splitlines() if "attempt" in line]
    assert [line.split("; ")[1].split(",")[0] for line in retry_lines] == [
        f"attempt {n} of 5 failed" for n in range(1, 5)
    ]
    out = " ".join(done.stdout.split())
    assert "TikTok unavailable" in out
    assert "HTTP -" not in out
    assert "no answer" in out


def test_webhook_retries_are_named(
    restore_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    setup_logging(verbose=False)
    with Store.open(sqlite_url(tmp_path / "ttsync.db")) as store:
        note = repos.add_notification(store, workflow_id="w", severity="error", title="t", message="m")
        url = _dead_url().replace("/open_api/v1.3/", "/hook-secret-part")
        assert not deliver_webhook(store, note, url, attempts=2, timeout=1.0)
    err = capsys.readouterr().err
    assert "webhook at 127.0.0.1 failed (ConnectError); attempt 1 of 2 failed" in err
    assert "hook-secret-part" not in err  # the URL is a secret: only its host is named
