"""`ttsync serve --http-workers 2`: two HTTP processes answer the API, the main process keeps the one scheduler
and the run workers, so a run started through either HTTP process runs once; a revoked token is refused."""

from __future__ import annotations

import time

import httpx2 as httpx
import psutil
import pytest

from audience_env import ORCH, Env
from server_env import add_admin, running_server, server_environ
from ttsync.store import runqueue

pytestmark = pytest.mark.slow


def test_two_http_workers_share_one_scheduler_and_worker_pool(env: Env) -> None:
    environ = server_environ(env.environ)
    add_admin(env.workspace.root, environ)
    with running_server(env.workspace.root, environ, "--workers", "1", "--http-workers", "2") as server:
        port = int(server.url.rsplit(":", 1)[1])
        listening = [
            p
            for p in psutil.Process(server.process.pid).children(recursive=True)
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in p.net_connections())
        ]
        assert len(listening) == 2  # two HTTP processes share the socket
        client, csrf = server.login()
        try:
            token = client.post("/api/tokens", json={"label": "t"}, headers={"X-CSRF-Token": csrf}).json()
            headers = {"Authorization": f"Bearer {token['token']}"}
            deadline = time.monotonic() + 30
            while httpx.get(server.url + "/readyz").status_code != 200:  # the main process's scheduler leads
                assert time.monotonic() < deadline
                time.sleep(0.2)
            started = httpx.post(f"{server.url}/api/orchestrations/{ORCH}/runs", headers=headers)
            assert started.status_code == 202, started.text
            workflow_id = started.json()["workflow_id"]
            deadline = time.monotonic() + 120
            while True:
                view = httpx.get(f"{server.url}/api/workflows/{workflow_id}", headers=headers).json()
                if view["workflow"]["state"] in ("succeeded", "succeeded_with_warnings"):
                    break
                assert view["workflow"]["state"] in ("pending", "running"), view
                assert time.monotonic() < deadline
                time.sleep(0.3)
            assert [row.state for row in runqueue.for_workflow(env.store, workflow_id)] == ["done"]
            revoked = client.delete(f"/api/tokens/{token['id']}", headers={"X-CSRF-Token": csrf})
            assert revoked.status_code in (200, 204), revoked.text
        finally:
            client.close()
        # The process that revoked it refuses it at once; the other one within its cache's 2 seconds.
        time.sleep(2.1)
        answers = {httpx.get(server.url + "/api/workflows", headers=headers).status_code for _ in range(6)}
        assert answers == {401}
