"""Campaigns through a real `ttsync serve` on loopback and the emulator over HTTP: create a segment and a
campaign, plan it, run it (202: a worker process executes it), its deliveries' workflows succeed and their
audiences hold the people; a cancelled run stops before its deliveries; forget and suppression keep no raw
value anywhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest

from audience_env import Env, make_env
from server_env import Server, add_admin, running_server, server_environ
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import repos

pytestmark = pytest.mark.slow

SEGMENT = {"name": "big-spenders", "source": "warehouse", "key_column": "amperity_id",
           "query": "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300"}  # fmt: skip


def _campaign(**changes: Any) -> dict[str, Any]:
    return {
        "name": "summer",
        "audience": "big-spenders",
        "sub_audiences": [{"name": "a", "percent": 50}, {"name": "b", "percent": 40}],
        "holdout_percent": 10,
        "destinations": [
            {"destination": "tiktok-audiences", "template": "best-profile", "user_id_types": ["EMAIL"]}
        ],
        "launch_date": datetime.now(UTC).date().isoformat(),
    } | changes


@pytest.fixture(scope="module")
def env(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One small sample workspace for the module, pointed at a fresh emulator seed."""
    emulator_server.admin.reset("demo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        made = make_env(emulator_server, tmp_path_factory.mktemp("campaigns") / "ws", monkeypatch, rows=500)
        try:
            yield made
        finally:
            made.store.close()


@pytest.fixture(scope="module")
def served(env: Env) -> Iterator[tuple[Server, dict[str, str]]]:
    environ = server_environ(env.environ)
    add_admin(env.workspace.root, environ)
    with running_server(env.workspace.root, environ, "--workers", "1") as server:
        client, csrf = server.login()
        try:
            token = client.post("/api/tokens", json={"label": "t"}, headers={"X-CSRF-Token": csrf}).json()[
                "token"
            ]
        finally:
            client.close()
        yield server, {"Authorization": f"Bearer {token}"}


def _finished(server: Server, headers: dict[str, str], path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        view: dict[str, Any] = httpx.get(server.url + path, headers=headers, timeout=30).json()
        if view["run"]["state"] not in ("queued", "running"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)


def test_segment_campaign_plan_run_in_a_worker_then_report(
    env: Env, served: tuple[Server, dict[str, str]]
) -> None:
    server, headers = served
    api = httpx.Client(base_url=server.url, headers=headers, timeout=60)
    assert api.post("/api/segments", json=SEGMENT).json() == {"name": "big-spenders", "change": "created"}
    preview = api.get("/api/segments/big-spenders/preview")
    assert preview.status_code == 200
    assert preview.json()["size"] > 0
    assert "@" not in preview.text  # counts and reason codes, never an e-mail
    bad = api.post("/api/campaigns", json=_campaign(audience="no-such-segment"))
    assert bad.status_code == 422
    assert bad.json()["resolution"] == "configuration_error"
    assert "known segments" in bad.json()["detail"]
    assert api.post("/api/campaigns", json=_campaign()).json()["change"] == "created"

    plan = api.post("/api/campaigns/summer/plan").json()
    assert [(d["group"], d["audience_name"]) for d in plan["deliveries"]] == [
        ("a", "summer - a"),
        ("b", "summer - b"),
    ]
    assert all(d["adds"] > 0 for d in plan["deliveries"])

    accepted = api.post("/api/campaigns/summer/runs")
    assert accepted.status_code == 202, accepted.text
    run = accepted.json()
    view = _finished(server, headers, run["links"]["run"])
    assert view["run"]["state"] == "done", view["run"]
    assert view["outcome"]["status"] == "sent"
    workflows = {w["orchestration"]: w for w in view["workflows"]}
    assert set(workflows) == {"summer.a.tiktok-audiences", "summer.b.tiktok-audiences"}
    assert all(w["state"].startswith("succeeded") for w in workflows.values())
    assert {d["workflow_id"] for d in view["outcome"]["deliveries"]} == {w["id"] for w in workflows.values()}
    for name in workflows:  # each delivery's audience holds its people in the emulator
        (state,) = repos.get_audience_states(env.store, "tiktok-audiences", name)
        assert env.emulator.admin.audience_members(state.audience_id)["EMAIL_SHA256"]
    report = api.get("/api/campaigns/summer/report").json()
    assert [r["status"] for r in report] == ["sent"]
    assert report[0]["sizes"]["holdout"] == view["outcome"]["holdout"] > 0
    audit = api.get("/api/audit", params={"action": "campaign.run"}).json()
    assert [a["details"]["run_id"] for a in audit] == [run["run_id"]]

    # Cancelled while its first delivery runs (TikTok slowed down): that delivery stops at a batch boundary
    # (failed `run_cancelled`, retryable), the second is never started, and no report line is added.
    env.emulator.admin.set_faults(rate=0.0, codes=[50002], latency_ms=700)
    try:
        again = api.post("/api/campaigns/summer/runs").json()
        deadline = time.monotonic() + 60
        while not api.get(again["links"]["run"]).json()["workflows"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        cancelled = api.post(f"/api/campaigns/summer/runs/{again['run_id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        view = _finished(server, headers, again["links"]["run"])
    finally:
        env.emulator.admin.clear_faults()
    assert view["run"]["state"] == "cancelled"
    assert [w["orchestration"] for w in view["workflows"]] == ["summer.a.tiktok-audiences"]
    assert view["workflows"][0]["state"] == "failed"
    assert view["workflows"][0]["error"]["resolution"] == "run_cancelled"
    assert len(api.get("/api/campaigns/summer/report").json()) == 1  # a cancelled run records no report line
    api.close()


def test_forget_and_suppression_keep_no_raw_value(env: Env, served: tuple[Server, dict[str, str]]) -> None:
    server, headers = served
    api = httpx.Client(base_url=server.url, headers=headers, timeout=60)
    email = "forget.this.person@example.com"
    added = api.post("/api/forget", json={"emails": [email, "not an email"], "phones": ["+1 415 555 0100"]})
    assert added.status_code == 200, added.text
    assert added.json()["identifiers"] == 2
    assert sum(added.json()["rejected"].values()) == 1
    upload = api.post(
        "/api/suppression", json={"name": "optouts", "type": "EMAIL", "hashes": ["a" * 64, "xyz"]}
    )
    assert upload.json()["identifiers"] == 1
    assert upload.json()["rejected"] == {"not_sha256_hex": 1}
    assert api.get("/api/suppression").json()["suppression"] == 1
    assert api.get("/api/forget/report").status_code == 200
    audit = api.get("/api/audit", params={"action": "privacy.forget"}).text
    api.close()
    assert email not in audit
    for path in env.workspace.root.rglob("*"):  # the store, the privacy list, the server's log
        if path.is_file() and "warehouse" not in path.name:
            data = path.read_bytes()
            assert email.encode() not in data, path
            assert b"415 555 0100" not in data, path
