"""`/metrics` of a real `ttsync serve` counts what its run worker processes did (prometheus_client's
multiprocess mode): after an audience run and an events run against the emulator, the counters equal the
workflows' own stored counts and TikTok's side (the emulator)."""

from __future__ import annotations

import stat
import time
from collections import defaultdict
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audience_env import ORCH, Env
from server_env import Server, add_admin, running_server, server_environ

pytestmark = pytest.mark.slow
EVENTS = "store-purchases-last-7-days"


def _run(server: Server, headers: dict[str, str], orchestration: str) -> dict[str, Any]:
    started = httpx.post(f"{server.url}/api/orchestrations/{orchestration}/runs", headers=headers)
    assert started.status_code == 202, started.text
    workflow_id = started.json()["workflow_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = httpx.get(f"{server.url}/api/workflows/{workflow_id}", headers=headers).json()
        if view["workflow"]["state"] not in ("pending", "running") and not any(
            row["state"] in ("queued", "running") for row in view["queue"]
        ):
            assert view["workflow"]["state"] in ("succeeded", "succeeded_with_warnings"), view
            workflow: dict[str, Any] = view["workflow"]
            return workflow
        time.sleep(0.3)
    raise AssertionError(f"workflow {workflow_id} did not finish")


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value} of every sample."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for key, v in samples.get(name, {}).items() if set(labels.items()) <= set(key))


def test_metrics_count_what_the_worker_runs_did(env: Env) -> None:
    environ = server_environ(env.environ)
    add_admin(env.workspace.root, environ)
    with running_server(env.workspace.root, environ, "--workers", "1") as server:
        folder = env.workspace.state_dir / "metrics" / server.url.rsplit(":", 1)[1]
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        client, csrf = server.login()
        try:
            token = client.post("/api/tokens", json={"label": "t"}, headers={"X-CSRF-Token": csrf}).json()
        finally:
            client.close()
        headers = {"Authorization": f"Bearer {token['token']}"}
        audience = _run(server, headers, ORCH)
        events = _run(server, headers, EVENTS)
        scraped = httpx.get(server.url + "/metrics")
    assert scraped.status_code == 200
    samples = _samples(scraped.text)
    tasks = {w["kind"]: {t["name"]: t["counts"] for t in w["tasks"]} for w in (audience, events)}

    upload, prepare = tasks["audience"]["upload"], tasks["audience"]["prepare"]
    assert upload["added_ids"] > 0
    assert (
        _value(samples, "ttsync_identifiers_sent_total", orchestration=ORCH, action="add")
        == upload["added_ids"]
    )
    assert _value(samples, "ttsync_identifiers_sent_total", action="remove") == upload["removed_ids"]
    rejected: dict[str, int] = defaultdict(int)
    for kind in prepare["match_report"]["types"]:
        for reason, n in kind["rejected"].items():
            rejected[reason] += n
    assert sum(rejected.values()) == prepare["rejected_values"] > 0
    for reason, n in rejected.items():
        assert _value(samples, "ttsync_identifiers_rejected_total", orchestration=ORCH, reason=reason) == n

    deliver = tasks["offline_events"]["deliver"]
    event_set_id = tasks["offline_events"]["verify_event_set"]["event_set_id"]
    assert deliver["sent"] == len(env.emulator.admin.events(event_set_id)) > 0
    assert _value(samples, "ttsync_events_sent_total", orchestration=EVENTS) == deliver["sent"]
    assert deliver["rejected"]
    for reason, n in deliver["rejected"].items():
        assert _value(samples, "ttsync_events_rejected_total", orchestration=EVENTS, reason=reason) == n
    assert (
        _value(samples, "ttsync_events_duplicate_total", orchestration=EVENTS) == deliver["duplicate_skipped"]
    )

    # TikTok calls by endpoint and code: the batches of each workflow, each answered code 0.
    assert (
        _value(samples, "ttsync_tiktok_calls_total", endpoint="segment/mapping/", code="0")
        == upload["requests"]
    )
    assert (
        _value(samples, "ttsync_tiktok_calls_total", endpoint="event/track/", code="0") == deliver["requests"]
    )
    calls = _value(samples, "ttsync_tiktok_calls_total")
    assert calls >= upload["requests"] + deliver["requests"] + 2  # and the audience and event set checks
    assert (
        _value(samples, "ttsync_tiktok_rate_limit_wait_seconds_count") == calls
    )  # one limiter pass per request
    # Every task of both workflows, once.
    for workflow in (audience, events):
        for task in workflow["tasks"]:
            count = _value(samples, "ttsync_task_seconds_count", kind=workflow["kind"], task=task["name"])
            assert count == 1, task["name"]
    assert _value(samples, "ttsync_http_requests_total", route="/api/workflows/{workflow_id}") > 0


def test_a_restart_starts_from_an_empty_metrics_folder(env: Env) -> None:
    environ = server_environ(env.environ)
    add_admin(env.workspace.root, environ)
    with running_server(env.workspace.root, environ, "--workers", "1") as server:
        port = server.url.rsplit(":", 1)[1]
        httpx.get(server.url + "/healthz")
    folder = env.workspace.state_dir / "metrics" / port
    stale = folder / "counter_999999.db"
    stale.write_bytes(b"left by a previous server")
    with running_server(env.workspace.root, environ, "--workers", "1", port=int(port)) as server:
        assert not stale.exists()
        assert httpx.get(server.url + "/metrics").status_code == 200
