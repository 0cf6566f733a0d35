"""Warnings of a run reach every output (plain, piped, `--json`, the workflow record, notifications); more
rejected rows than `max_reject_rate` end the workflow `succeeded_with_warnings` (issue 10, section 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from audience_env import ORCH, Env
from ttsync.app.runs import build_run, start_run
from ttsync.notify.webhook import build_payload
from ttsync.store import repos

EVENTS_ORCH = "store-purchases-last-7-days"


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ttsync ARGS -w WORKSPACE`, output piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args, "-w", str(env.workspace.root)],
        env=os.environ | env.environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def update_orchestration(env: Env, name: str, **fields: Any) -> None:
    current = repos.get_orchestration(env.store, name)
    repos.save_orchestration(env.store, current.model_copy(update=fields))


def break_a_third_of_the_currencies(env: Env) -> None:
    query = repos.get_orchestration(env.store, EVENTS_ORCH).query
    broken = (
        "SELECT * REPLACE (CASE WHEN hash(event_id) % 3 = 0 THEN 'NOT-A-CURRENCY' ELSE currency END AS currency) "
        f"FROM ({query})"
    )
    update_orchestration(env, EVENTS_ORCH, query=broken)


def test_events_over_the_reject_rate_end_with_warnings_in_every_output(env: Env) -> None:
    break_a_third_of_the_currencies(env)

    plain = cli(env, "run", EVENTS_ORCH)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    text = " ".join(plain.stdout.split())
    assert "succeeded_with_warnings" in text
    assert "warning:" in text
    assert "invalid_currency" in text
    assert "max_reject_rate 5%" in text

    workflow = repos.list_workflows(env.store, orchestration=EVENTS_ORCH, limit=1)[0]
    assert workflow.state == "succeeded_with_warnings"
    shown = json.loads(cli(env, "workflows", "show", workflow.id, "--json").stdout)
    assert shown["ok"] is True
    assert shown["state"] == "succeeded_with_warnings"
    [warning] = [w for w in shown["warnings"] if w["serious"]]
    assert warning["task"] == "deliver"
    assert warning["resolution"] == "invalid_rows"
    assert "invalid_currency" in warning["message"]

    notification = repos.list_notifications(env.store)[0]
    assert notification.severity == "warning"
    assert notification.workflow_id == workflow.id
    assert notification.resolution == "invalid_rows"
    assert "invalid_currency" in notification.message
    payload = build_payload(notification)
    assert "invalid_currency" in payload["text"]
    assert "Continue with" not in payload["text"]  # nothing to continue: the workflow succeeded

    listed = json.loads(cli(env, "workflows", "list", "--json").stdout)
    assert listed[0]["state"] == "succeeded_with_warnings"

    # --json run: the warnings are in the JSON, the exit code is 0.
    as_json = cli(env, "run", EVENTS_ORCH, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["state"] == "succeeded_with_warnings"
    assert any("invalid_currency" in w["message"] for w in data["warnings"])

    # --plan, piped and --json: the same warning.
    plan = cli(env, "run", EVENTS_ORCH, "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "invalid_currency" in plan.stdout
    assert "were rejected" in " ".join(plan.stderr.split())
    plan_json = json.loads(cli(env, "run", EVENTS_ORCH, "--plan", "--json").stdout)
    assert any("were rejected" in w for w in plan_json["warnings"])


def test_events_below_the_reject_rate_succeed_and_still_show_the_warning(env: Env) -> None:
    break_a_third_of_the_currencies(env)
    update_orchestration(env, EVENTS_ORCH, settings={"max_reject_rate": 0.5})
    outcome = start_run(build_run(env.workspace, env.store, EVENTS_ORCH))
    assert outcome.ok
    assert outcome.workflow.state == "succeeded"
    warnings = outcome.to_dict()["warnings"]
    assert len(warnings) == 1
    assert warnings[0]["serious"] is False
    assert "were rejected" in warnings[0]["message"]
    assert [n for n in repos.list_notifications(env.store) if n.severity == "warning"] == []


def test_small_audience_and_rejected_identifiers_warn(env: Env) -> None:
    update_orchestration(
        env,
        ORCH,
        # Half of the people have only an invalid email: they cannot be sent.
        query="SELECT amperity_id, CASE WHEN customer_number % 2 = 0 THEN 'not an email' ELSE email END AS email, "
        "CASE WHEN customer_number % 2 = 0 THEN NULL ELSE phone END AS phone, country, NULL AS idfa, "
        "NULL AS aaid FROM Merged_Customers WHERE lifetime_value >= 500 LIMIT 300",
    )
    done = cli(env, "run", ORCH, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["state"] == "succeeded_with_warnings"
    messages = {w["task"]: w["message"] for w in data["warnings"]}
    assert "TikTok needs at least 1,000" in messages["plan"]
    assert "have no usable identifier, more than max_reject_rate 5%" in messages["prepare"]
    assert "invalid_email" in messages["prepare"]
    notification = repos.list_notifications(env.store)[0]
    assert notification.severity == "warning"
    assert "1,000" in notification.message


def test_a_removal_close_to_the_remove_guard_warns(env: Env) -> None:
    assert env.run().ok
    # Keep about 55% of the people: the run removes about 45% of the audience, under the guard of 50%.
    update_orchestration(
        env,
        ORCH,
        query="SELECT amperity_id, email, phone, country, idfa, aaid FROM Merged_Customers "
        "WHERE lifetime_value >= 500 AND customer_number % 20 < 11",
    )
    done = cli(env, "run", ORCH)
    assert done.returncode == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert "close to the remove guard of 50%" in text
    workflow = repos.list_workflows(env.store, orchestration=ORCH, limit=1)[0]
    shown = json.loads(cli(env, "workflows", "show", workflow.id, "--json").stdout)
    [near] = [w for w in shown["warnings"] if "remove guard" in w["message"]]
    assert near["task"] == "plan"
    assert near["serious"] is False  # a note: the state follows the other (serious) warnings only
