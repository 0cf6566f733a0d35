"""End to end through a real `ttsync serve` process: add a user, log in, create a credential, destination and
orchestration, plan, run, watch it succeed; then break the token in TikTok's eyes, read the resolution, fix
it, resolve."""

from __future__ import annotations

import time
from typing import Any

import httpx2 as httpx
import pytest

from audience_env import Env
from server_env import ADMIN_PASSWORD, running_server, server_environ, ttsync

pytestmark = pytest.mark.slow
OK = ("succeeded", "succeeded_with_warnings")  # a fresh audience's match rate is still being computed


def _active(view: dict[str, Any]) -> bool:
    return any(row["state"] in ("queued", "running") for row in view["queue"])


def _wait(client: httpx.Client, workflow_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/api/workflows/{workflow_id}")
        if answer.status_code == 200:
            view: dict[str, Any] = answer.json()
            if view["workflow"]["state"] not in ("pending", "running") and not _active(view):
                return view
        time.sleep(0.3)
    raise AssertionError(f"workflow {workflow_id} did not finish")


def test_add_user_log_in_configure_run_fail_fix_resolve(env: Env) -> None:
    environ = server_environ(env.environ)
    root = str(env.workspace.root)
    refused = ttsync("serve", "-w", root, "--port", "1", env=environ, check=False)
    assert refused.returncode == 2
    assert "ttsync users add NAME --role admin" in " ".join(refused.stderr.split())
    ttsync(
        "users",
        "add",
        "admin",
        "--role",
        "admin",
        "--password-env",
        "ADMIN_PASSWORD",
        "-w",
        root,
        env=environ,
    )

    with running_server(env.workspace.root, environ, "--workers", "1", "--tick", "0.5") as server:
        client, csrf = server.login()
        headers = {"X-CSRF-Token": csrf}
        seed = env.emulator.seed
        credential = {
            "name": "api-cred",
            "app_id": seed.app_id,
            "app_secret": seed.app_secret,
            "access_token": seed.operator_token,
            "advertiser_ids": [seed.advertiser_ids[0]],
            "environment": "sandbox",
        }
        answer = client.post("/api/credentials", json=credential, headers=headers)
        assert answer.status_code == 200, answer.text
        shown = client.get("/api/credentials/api-cred").json()
        assert shown["has_access_token"]
        assert seed.operator_token not in str(shown)
        destination = {
            "name": "api-dest",
            "kind": "audience",
            "credential": "api-cred",
            "environment": "sandbox",
            "allow_restricted_pii": True,
            "settings": {
                "advertiser_ids": [seed.advertiser_ids[0]],
                "user_id_types": ["EMAIL"],
                "delivery": "partner",
                "mode": "mirror",
            },
        }
        assert client.post("/api/destinations", json=destination, headers=headers).status_code == 200
        orchestration = {
            "name": "api-orch",
            "source": "warehouse",
            "destination": "api-dest",
            "key_column": "amperity_id",
            "settings": {"audience_name": "API customers"},
            "query": "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 500",
        }
        assert client.post("/api/orchestrations", json=orchestration, headers=headers).status_code == 200
        plan = client.post("/api/orchestrations/api-orch/plan", headers=headers)
        assert plan.status_code == 200, plan.text

        started = client.post("/api/orchestrations/api-orch/runs", headers=headers)
        assert started.status_code == 202, started.text
        done = _wait(client, started.json()["workflow_id"])
        assert done["workflow"]["state"] in OK, done

        # TikTok stops accepting the token: the next run fails with a resolution.
        broken = credential | {"access_token": "not-a-valid-token"}
        assert client.post("/api/credentials", json=broken, headers=headers).status_code == 200
        second = client.post("/api/orchestrations/api-orch/runs", headers=headers).json()["workflow_id"]
        failed = _wait(client, second)
        assert failed["workflow"]["state"] == "failed"
        assert failed["resolution"]["key"] in ("invalid_credentials", "token_expired")
        assert any(n["workflow_id"] == second for n in client.get("/api/notifications").json())

        assert client.post("/api/credentials", json=credential, headers=headers).status_code == 200
        resolved = client.post(f"/api/workflows/{second}/resolve", headers=headers)
        assert resolved.status_code == 202, resolved.text
        assert _wait(client, second)["workflow"]["state"] in OK

        actions = [e["action"] for e in client.get("/api/audit").json()]
        assert {"credential.save", "run.run", "run.resolve", "user.add"} <= set(actions)
        assert "not-a-valid-token" not in client.get("/api/audit").text
        client.close()
    audit = ttsync("audit", "-w", root, "--json", env=environ)
    assert "run.resolve" in audit.stdout
    assert ADMIN_PASSWORD not in audit.stdout
