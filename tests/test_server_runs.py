"""Background runs of a real `ttsync serve`: executed by worker processes, cancelled at a batch boundary and
retried, a killed worker leaves the workflow interrupted and retryable, queued runs survive a killed server,
progress streams as server-sent events."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from audience_env import ORCH, Env
from server_env import Server, running_server, server_environ, ttsync
from ttsync.store import runqueue

pytestmark = pytest.mark.slow
OK = ("succeeded", "succeeded_with_warnings")


@pytest.fixture
def admin_env(env: Env) -> Iterator[dict[str, str]]:
    environ = server_environ(env.environ)
    ttsync(
        "users",
        "add",
        "admin",
        "--role",
        "admin",
        "--password-env",
        "ADMIN_PASSWORD",
        "-w",
        str(env.workspace.root),
        env=environ,
    )
    yield environ
    env.emulator.admin.clear_faults()


def _active(view: dict[str, Any]) -> bool:
    return any(row["state"] in ("queued", "running") for row in view["queue"])


def _token(server: Server) -> dict[str, str]:
    client, csrf = server.login()
    try:
        answer = client.post("/api/tokens", json={"label": "tests"}, headers={"X-CSRF-Token": csrf})
        return {"Authorization": f"Bearer {answer.json()['token']}"}
    finally:
        client.close()


def _view(server: Server, headers: dict[str, str], workflow_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/api/workflows/{workflow_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def _until(check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def _finished(server: Server, headers: dict[str, str], workflow_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view = _view(server, headers, workflow_id)
        return None if _active(view) or view["workflow"]["state"] in ("pending", "running") else view

    result: dict[str, Any] = _until(done)
    return result


def _slow_tiktok(env: Env) -> None:
    env.emulator.admin.set_faults(
        rate=0.0, codes=[50002], latency_ms=700
    )  # every call takes 0.7 s: runs last seconds


def test_cancel_stops_at_a_boundary_and_retry_finishes(env: Env, admin_env: dict[str, str]) -> None:
    with running_server(env.workspace.root, admin_env, "--workers", "1") as server:
        headers = _token(server)
        _slow_tiktok(env)
        workflow_id = httpx.post(f"{server.url}/api/orchestrations/{ORCH}/runs", headers=headers).json()[
            "workflow_id"
        ]
        _until(lambda: _view(server, headers, workflow_id)["workflow"]["state"] == "running")
        cancelled = httpx.post(f"{server.url}/api/workflows/{workflow_id}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        view = _finished(server, headers, workflow_id)
        assert view["workflow"]["state"] == "failed"
        assert view["resolution"]["key"] == "run_cancelled"
        env.emulator.admin.clear_faults()
        assert (
            httpx.post(f"{server.url}/api/workflows/{workflow_id}/retry", headers=headers).status_code == 202
        )
        assert _finished(server, headers, workflow_id)["workflow"]["state"] in OK


def test_killed_worker_leaves_the_workflow_interrupted_and_retryable(
    env: Env, admin_env: dict[str, str]
) -> None:
    with running_server(env.workspace.root, admin_env, "--workers", "1") as server:
        headers = _token(server)
        _slow_tiktok(env)
        workflow_id = httpx.post(f"{server.url}/api/orchestrations/{ORCH}/runs", headers=headers).json()[
            "workflow_id"
        ]
        view = _until(
            lambda: (v := _view(server, headers, workflow_id))["workflow"]["state"] == "running" and v
        )
        os.kill(view["queue"][-1]["holder_pid"], signal.SIGKILL)
        assert _until(lambda: _view(server, headers, workflow_id)["workflow"]["state"] == "interrupted")
        env.emulator.admin.clear_faults()
        retried = _until(
            lambda: (
                (
                    r := httpx.post(f"{server.url}/api/workflows/{workflow_id}/retry", headers=headers)
                ).status_code
                == 202
                and r
            )
        )
        assert retried.json()["workflow_id"] == workflow_id
        assert _finished(server, headers, workflow_id)["workflow"]["state"] in OK


def test_runs_queued_in_a_killed_server_run_after_restart(env: Env, admin_env: dict[str, str]) -> None:
    with running_server(env.workspace.root, admin_env, "--workers", "1") as server:
        headers = _token(server)
        _slow_tiktok(env)
        first = httpx.post(f"{server.url}/api/orchestrations/{ORCH}/runs", headers=headers).json()
        second = httpx.post(
            f"{server.url}/api/orchestrations/store-purchases-last-7-days/runs", headers=headers
        ).json()
        assert runqueue.get_queued(env.store, second["queue_id"]).state == "queued"  # the one worker is busy
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    env.emulator.admin.clear_faults()
    with running_server(env.workspace.root, admin_env, "--workers", "1") as server:
        _until(lambda: runqueue.get_queued(env.store, second["queue_id"]).state == "done", timeout=120)
        _until(
            lambda: runqueue.get_queued(env.store, first["queue_id"]).state in ("lost", "done"), timeout=120
        )
    _kill_workers(env, first["queue_id"], second["queue_id"])


def _kill_workers(env: Env, *queue_ids: str) -> None:
    """No worker of a killed server may outlive the test (it would call the shared emulator)."""
    for queue_id in queue_ids:
        pid = runqueue.get_queued(env.store, queue_id).holder_pid
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_progress_streams_as_server_sent_events(env: Env, admin_env: dict[str, str]) -> None:
    with running_server(env.workspace.root, admin_env, "--workers", "1") as server:
        headers = _token(server)
        workflow_id = httpx.post(f"{server.url}/api/orchestrations/{ORCH}/runs", headers=headers).json()[
            "workflow_id"
        ]
        events: list[str] = []
        with httpx.stream(
            "GET", f"{server.url}/api/workflows/{workflow_id}/events", headers=headers, timeout=120
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
        assert events[0] == "workflow"
        assert events[-1] == "end"
        assert events.count("workflow") >= 2  # it changed while it ran
