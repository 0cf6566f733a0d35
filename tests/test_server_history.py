"""Read-side history through a real `ttsync serve`: offline events per day and the history of an audience,
after real runs (started through the API, executed by a worker) against the emulator. Expected numbers come
from the emulator (what TikTok holds) and from the workflows' own stored counts, never from the queries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import duckdb
import httpx2 as httpx
import pytest

from audience_env import ORCH, Env
from server_env import Server, add_admin, running_server, server_environ, ttsync
from ttsync.store import repos

pytestmark = pytest.mark.slow
EVENTS = "store-purchases-last-7-days"


def _bearer(server: Server) -> dict[str, str]:
    client, csrf = server.login()
    try:
        answer = client.post("/api/tokens", json={"label": "tests"}, headers={"X-CSRF-Token": csrf})
        return {"Authorization": f"Bearer {answer.json()['token']}"}
    finally:
        client.close()


def _run(server: Server, headers: dict[str, str], orchestration: str) -> dict[str, Any]:
    """Start a run through the API and wait until the worker finished it; the workflow as the API shows it."""
    started = httpx.post(f"{server.url}/api/orchestrations/{orchestration}/runs", headers=headers)
    assert started.status_code == 202, started.text
    workflow_id = started.json()["workflow_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = httpx.get(f"{server.url}/api/workflows/{workflow_id}", headers=headers).json()
        active = any(row["state"] in ("queued", "running") for row in view["queue"])
        if not active and view["workflow"]["state"] not in ("pending", "running"):
            assert view["workflow"]["state"] in ("succeeded", "succeeded_with_warnings"), view
            workflow: dict[str, Any] = view["workflow"]
            return workflow
        time.sleep(0.3)
    raise AssertionError(f"workflow {workflow_id} did not finish")


def _task(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    counts: dict[str, Any] = next(t for t in workflow["tasks"] if t["name"] == name)["counts"]
    return counts


def test_events_per_day_and_audience_history_after_real_runs(env: Env) -> None:
    environ = server_environ(env.environ)
    root = str(env.workspace.root)
    add_admin(env.workspace.root, environ)
    ttsync(
        "users",
        "add",
        "view",
        "--role",
        "viewer",
        "--password-env",
        "ADMIN_PASSWORD",
        "-w",
        root,
        env=environ,
    )
    with running_server(env.workspace.root, environ, "--workers", "1") as server:
        headers = _bearer(server)
        first_events = _run(server, headers, EVENTS)
        second_events = _run(server, headers, EVENTS)  # everything is in the ledger: all duplicates
        first_audience = _run(server, headers, ORCH)
        expected_first = len(env.expected())
        # Five customers drop out of the segment: the next run removes their identifiers.
        with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
            con.execute(
                "UPDATE Merged_Customers SET lifetime_value = 0 WHERE amperity_id IN (SELECT amperity_id "
                "FROM Merged_Customers WHERE lifetime_value >= 500 ORDER BY amperity_id LIMIT 5)"
            )
        second_audience = _run(server, headers, ORCH)

        viewer_client, _ = server.login("view")
        try:
            daily = viewer_client.get("/api/events/daily")
            history = viewer_client.get(f"/api/audiences/{ORCH}/history")
            by_id = viewer_client.get(f"/api/audiences/{env.audience_id()}/history")
            other = viewer_client.get("/api/events/daily", params={"destination": "tiktok-audiences"})
            unknown = viewer_client.get("/api/audiences/no-such-thing/history")
            bad_days = viewer_client.get("/api/events/daily", params={"days": 0})
        finally:
            viewer_client.close()

    # Events: one day (today, UTC), one destination; accepted = what TikTok holds.
    assert daily.status_code == 200, daily.text
    event_set_id = _task(first_events, "verify_event_set")["event_set_id"]
    held_by_tiktok = len(env.emulator.admin.events(event_set_id))
    first, second = _task(first_events, "deliver"), _task(second_events, "deliver")
    assert held_by_tiktok > 0
    assert first["rejected_total"] > 0
    assert daily.json() == [
        {
            "day": datetime.now(UTC).date().isoformat(),
            "destination": "tiktok-offline-events",
            "runs": 2,
            "accepted": held_by_tiktok,
            "rejected": {
                reason: first["rejected"].get(reason, 0) + second["rejected"].get(reason, 0)
                for reason in {*first["rejected"], *second["rejected"]}
            },
            "rejected_total": first["rejected_total"] + second["rejected_total"],
            "duplicates": held_by_tiktok,  # the second run sent nothing again
        }
    ]
    assert other.json() == []

    # Audience: two runs, newest first, sizes as TikTok holds them, the removes of the second run.
    assert history.status_code == 200, history.text
    points = history.json()
    assert [p["workflow_id"] for p in points] == [second_audience["id"], first_audience["id"]]
    audience_id = env.audience_id()
    (state,) = repos.get_audience_states(env.store, "tiktok-audiences", ORCH)
    assert {p["audience_id"] for p in points} == {audience_id}
    assert {p["advertiser_id"] for p in points} == {state.advertiser_id}
    assert points[0]["size"] == sum(len(v) for v in env.emulator.admin.audience_members(audience_id).values())
    assert points[1]["size"] == _task(first_audience, "read_back")["tiktok_size"]
    assert points[1]["adds"] == expected_first
    assert points[1]["removes"] == 0
    assert points[0]["adds"] == 0
    assert points[0]["removes"] > 0
    assert points[0]["size"] == points[1]["size"] - points[0]["removes"]
    assert [p["match_rate"] for p in points] == [
        _task(w, "read_back")["match_rate"] for w in (second_audience, first_audience)
    ]
    assert by_id.json() == points

    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert bad_days.status_code == 422
