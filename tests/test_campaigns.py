"""Campaigns end to end: the sample workspace, real DuckDB, the emulator over HTTP, the CLI as a process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import date
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from audience_env import Env
from ttsync.app import background
from ttsync.app.campaigns import group_sizes, plan_campaign, run_campaign
from ttsync.app.workspace.apply import apply_config
from ttsync.config.file import WorkspaceFile
from ttsync.errors import ConfigError, NotFoundError
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.store import repos, runqueue
from ttsync.sync.groups import bucket_of
from ttsync.workflows.crashpoints import CRASH_ENV
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher

LAUNCH = date(2030, 1, 1)
SEGMENTS = [
    {"name": "valuable", "source": "warehouse", "key_column": "amperity_id",
     "query": "SELECT amperity_id, email, country, lifetime_value FROM Merged_Customers WHERE lifetime_value >= 300"},
    {"name": "top-spenders", "source": "warehouse", "key_column": "amperity_id",
     "query": "SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= 2000"},
]  # fmt: skip
DEST = [{"destination": "tiktok-audiences", "template": "best-profile", "user_id_types": ["EMAIL"]}]


def campaign(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "spring",
        "audience": "valuable",
        "exclusions": ["top-spenders"],
        "sub_audiences": [{"name": "a", "percent": 45}, {"name": "b", "percent": 45}],
        "holdout_percent": 10,
        "destinations": DEST,
        "timing": "recurring",
        "launch_date": LAUNCH.isoformat(),
    }
    return base | changes


def apply(env: Env, *campaigns: dict[str, Any], today: date = LAUNCH) -> None:
    config = WorkspaceFile.model_validate({"segments": SEGMENTS, "campaigns": list(campaigns)})
    apply_config(env.store, config, today=today)


def emails_of(env: Env, sql: str) -> dict[str, str]:
    """amperity_id -> email hash for the rows of `sql` (scalar hashing, independent of the run's path)."""
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    out = {}
    for key, email in rows:
        with contextlib.suppress(InvalidIdentifier):
            if email is not None:
                out[str(key)] = hash_identifier("email", email)
    return out


def members(env: Env, orchestration: str) -> set[str]:
    states = repos.get_audience_states(env.store, "tiktok-audiences", orchestration)
    assert len(states) == 1
    return env.emulator.admin.audience_members(states[0].audience_id).get("EMAIL_SHA256", set())


def test_split_holdout_exclusions_and_stability(env: Env) -> None:
    apply(env, campaign())
    outcome = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert outcome.ok, outcome.to_dict()
    assert [d["audience_name"] for d in outcome.deliveries] == ["spring - a", "spring - b"]
    a, b = members(env, "spring.a.tiktok-audiences"), members(env, "spring.b.tiktok-audiences")
    audience = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300")
    excluded = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 2000")
    assert excluded
    assert not (a | b) & set(excluded.values())
    eligible = {h for k, h in audience.items() if k not in excluded}
    # The sample shares some e-mails between profiles: people are disjoint, so compare unshared e-mails.
    shared = {h for h in audience.values() if list(audience.values()).count(h) > 1}
    assert a
    assert b
    assert not (a & b) - shared
    holdout = eligible - a - b - shared
    assert (a | b) <= eligible
    # 45/45/10 of about a thousand people: each share within a few points of its target
    assert abs(len(holdout) / len(eligible) - 0.10) < 0.04, (len(holdout), len(eligible))
    assert abs(len(a) / len(eligible) - 0.45) < 0.06
    assert outcome.holdout >= len(holdout)  # counted over rows (people without an e-mail included)
    # The holdout is recorded: exactly the eligible keys in the top 10% of buckets, in their stored form
    # (the sample's UUID keys look like advertising ids, so they are keyed-hashed as in run folders).
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        keys = con.execute(
            "SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= 300 AND lifetime_value < 2000"
        ).fetchall()
    held = [str(k) for (k,) in keys if bucket_of("spring", str(k)) >= 9000]
    want_holdout = set(stored_row_keys(workspace_hasher(env.store), held))
    assert not want_holdout & set(held)  # no raw key that looks like an identifier
    recorded = pq.read_table(env.workspace.state_dir / "campaigns" / "spring.holdout.parquet")
    assert set(recorded.column("row_key").to_pylist()) == want_holdout
    assert outcome.holdout == len(want_holdout)

    # New people arrive: nobody already assigned moves, and the holdout still receives nothing.
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
        con.execute(
            "INSERT INTO Merged_Customers (amperity_id, email, country, lifetime_value) "
            "SELECT 'new-' || i, 'new.person' || i || '@example.com', 'US', 400 FROM range(300) t(i)"
        )
    again = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert again.ok
    a2, b2 = members(env, "spring.a.tiktok-audiences"), members(env, "spring.b.tiktok-audiences")
    assert a <= a2
    assert b <= b2
    assert not (a2 & b2) - shared
    assert not (holdout - shared) & (a2 | b2)
    assert len(a2 - a) + len(b2 - b) > 200  # most of the 300 newcomers went to a or b


def test_one_time_creates_a_new_audience_per_delivery(env: Env) -> None:
    apply(
        env, campaign(timing="one_time", holdout_percent=0, sub_audiences=[{"name": "all", "percent": 100}])
    )
    first = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    second = run_campaign(env.workspace, env.store, "spring", today=date(2030, 1, 8))
    assert first.ok
    assert second.ok
    assert first.deliveries[0]["audience_name"] == "spring - all - 2030-01-01"
    assert second.deliveries[0]["audience_name"] == "spring - all - 2030-01-08"
    old = members(env, "spring.all.tiktok-audiences.2030-01-01")
    new = members(env, "spring.all.tiktok-audiences.2030-01-08")
    assert old
    assert old == new
    ids = {
        repos.get_audience_states(env.store, "tiktok-audiences", d["orchestration"])[0].audience_id
        for d in (first.deliveries[0], second.deliveries[0])
    }
    assert len(ids) == 2


def test_nothing_is_sent_before_the_launch_date(env: Env) -> None:
    apply(env, campaign())
    outcome = run_campaign(env.workspace, env.store, "spring", today=date(2029, 12, 31))
    assert outcome.status == "not_launched"
    assert not outcome.deliveries
    assert repos.get_audience_states(env.store, "tiktok-audiences", "spring.a.tiktok-audiences") == []


def test_where_groups_first_match_wins(env: Env) -> None:
    groups = [{"name": "us", "where": "country = 'US'"}, {"name": "rest", "where": "TRUE"}]
    apply(env, campaign(sub_audiences=groups, holdout_percent=0, exclusions=[]))
    plan = plan_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert plan["sizes"] == group_sizes(env.workspace, env.store, repos.get_campaign(env.store, "spring"))
    assert run_campaign(env.workspace, env.store, "spring", today=LAUNCH).ok
    us, rest = members(env, "spring.us.tiktok-audiences"), members(env, "spring.rest.tiktok-audiences")
    expected_us = emails_of(
        env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300 AND country = 'US'"
    )
    assert us == set(expected_us.values())
    assert rest


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"audience": "nope"}, "segment 'nope', which does not exist"),
        ({"exclusions": ["valuable"]}, "excludes its own audience"),
        ({"holdout_percent": 20}, "must sum to 100"),
        ({"sub_audiences": [{"name": "a", "percent": 50}, {"name": "b", "where": "TRUE"}]}, "not both"),
        ({"name": "x" * 75}, "TikTok allows 70"),
        ({"timing": "one_time", "launch_date": "2029-06-01"}, "in the past for a one-time campaign"),
        ({"schedule": "0 6 31 2 *"}, "never fires"),
        ({"end_date": "2029-01-01"}, "before launch_date"),
    ],
)
def test_bad_campaigns_are_refused_with_a_fix(env: Env, changes: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=message):
        apply(env, campaign(**changes))
    assert "spring" not in {c.name for c in repos.list_campaigns(env.store)}


def test_cli_plan_and_run_json(env: Env) -> None:
    apply(env, campaign())
    base = [sys.executable, "-m", "ttsync", "campaigns"]
    ws = ["--workspace", str(env.workspace.root), "--json", "--today", LAUNCH.isoformat()]
    plan = subprocess.run([*base, "plan", "spring", *ws], capture_output=True, text=True, check=False)
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert set(data["sizes"]) == {"a", "b", "holdout"}
    assert [d["audience_name"] for d in data["deliveries"]] == ["spring - a", "spring - b"]
    ran = subprocess.run([*base, "run", "spring", *ws], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "sent"
    assert result["holdout"] == data["sizes"]["holdout"]
    missing = subprocess.run([*base, "run", "nope", *ws], capture_output=True, text=True, check=False)
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr


def test_learning_guard_defers_then_converges(env: Env) -> None:
    guard = {"max_change_per_sync": 0.1, "stable_days": 3}
    groups = [{"name": "all", "percent": 100}]
    apply(env, campaign(sub_audiences=groups, holdout_percent=0, exclusions=[], learning_guard=guard))
    assert run_campaign(env.workspace, env.store, "spring", today=LAUNCH).ok  # first delivery: in full
    name = "spring.all.tiktok-audiences"
    first = members(env, name)
    query = "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300"
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:  # a big change: many leave
        con.execute("UPDATE Merged_Customers SET lifetime_value = 0 WHERE lifetime_value BETWEEN 300 AND 420")
    target = set(emails_of(env, query).values())
    assert len(first - target) > 0.2 * len(first)

    held = run_campaign(env.workspace, env.store, "spring", today=date(2030, 1, 2))  # stable period
    assert held.deliveries[0]["remove_ids"] == 0
    assert held.deliveries[0]["deferred_removes"] == len(first - target)
    assert members(env, name) == first

    syncs, day = 0, date(2030, 1, 4)
    while members(env, name) != target:
        out = run_campaign(env.workspace, env.store, "spring", today=day).deliveries[0]
        size = len(members(env, name))
        assert out["add_ids"] + out["remove_ids"] <= max(1, int(0.1 * (size + out["remove_ids"]))) + 1
        syncs += 1
        assert syncs < 10, out
    assert syncs >= 2  # capped at 10% a sync, over a fifth of the audience takes several syncs
    last = run_campaign(env.workspace, env.store, "spring", today=day).deliveries[0]
    assert last["deferred_removes"] == 0
    assert last["remove_ids"] == 0


# Group a is delivered first, then b: `#2` kills the process inside b's delivery, after a committed.
@pytest.mark.parametrize("point", ["upload:batch#2", "commit:snapshot"])
def test_killed_mid_delivery_then_rerun_converges(env: Env, point: str) -> None:
    apply(env, campaign())
    cmd = [
        sys.executable,
        "-m",
        "ttsync",
        "campaigns",
        "run",
        "spring",
        "--workspace",
        str(env.workspace.root),
    ]
    cmd += ["--today", LAUNCH.isoformat(), "--json"]
    environ = {**os.environ, CRASH_ENV: point}
    killed = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    environ.pop(CRASH_ENV)
    again = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False, timeout=120)
    assert again.returncode == 0, again.stderr
    audience = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300")
    excluded = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 2000")
    eligible = {h for k, h in audience.items() if k not in excluded}
    a, b = members(env, "spring.a.tiktok-audiences"), members(env, "spring.b.tiktok-audiences")
    # Converged to the split an uninterrupted run makes (buckets 0-4499 are a, 4500-8999 b).
    want: dict[str, set[str]] = {"a": set(), "b": set()}
    for key, digest in audience.items():
        if key not in excluded and bucket_of("spring", key) < 9000:
            want["a" if bucket_of("spring", key) < 4500 else "b"].add(digest)
    assert a == want["a"]
    assert b == want["b"]
    assert eligible


def test_failed_delivery_retried_and_resolved_by_workflow_id(env: Env) -> None:
    """A delivery's orchestration is derived, never stored: `workflows retry/resolve` and the Python API's
    retry still rebuild it from the campaign (a real failure: the emulator refuses every mapping call)."""
    import ttsync

    apply(env, campaign())
    env.emulator.admin.set_faults(rate=1.0, codes=[40000], paths=["segment/mapping/"])
    failed = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert failed.status == "failed"
    assert [d["ok"] for d in failed.deliveries] == [False, False]
    env.emulator.admin.clear_faults()
    first, second = (d["workflow_id"] for d in failed.deliveries)
    base = [sys.executable, "-m", "ttsync", "workflows"]
    ws = ["--workspace", str(env.workspace.root), "--json"]
    retried = subprocess.run([*base, "retry", first[:8], *ws], capture_output=True, text=True, check=False)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["ok"] is True
    resolved = subprocess.run([*base, "resolve", second, *ws], capture_output=True, text=True, check=False)
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["id"] == second
    # The Python API retries a finished one as a no-op.
    assert ttsync.Workspace(env.workspace.root).retry(first).ok
    # The server's queue (what `POST /api/workflows/ID/restart` enqueues; the worker's own code, in-process).
    queued = background.enqueue(
        env.store, "spring.b.tiktok-audiences", "restart", actor="t", workflow_id=second
    )
    assert background.claim(env.store) is not None
    background.execute(env.workspace, env.store, queued)
    assert runqueue.get_queued(env.store, queued.id).state == "done"
    with pytest.raises(NotFoundError):
        background.enqueue(env.store, "spring.zz.tiktok-audiences", "retry", actor="t", workflow_id=second)
    want: dict[str, set[str]] = {"a": set(), "b": set()}
    audience = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300")
    excluded = emails_of(env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 2000")
    for key, digest in audience.items():
        if key not in excluded and bucket_of("spring", key) < 9000:
            want["a" if bucket_of("spring", key) < 4500 else "b"].add(digest)
    assert members(env, "spring.a.tiktok-audiences") == want["a"]
    assert members(env, "spring.b.tiktok-audiences") == want["b"]


def test_segment_preview_counts_without_values(env: Env) -> None:
    apply(env, campaign())
    cmd = [sys.executable, "-m", "ttsync", "segments", "preview", "valuable"]
    cmd += ["--workspace", str(env.workspace.root), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    sql = "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value >= 300"
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    valid = emails_of(env, sql)  # scalar hashing: the people with a usable e-mail
    assert data["size"] == len(rows)
    email = data["coverage"]["EMAIL"]
    assert email["people"] == len(valid)
    assert email["present"] == sum(1 for _, e in rows if e is not None)
    assert email["rejected"] == email["present"] - email["valid"] > 0  # the sample has bad e-mails
    assert sum(r["count"] for r in data["rejections"] if r["type"] == "EMAIL") == email["rejected"]
    assert data["match_quality"]["people_matchable"] == len(valid)  # the segment returns e-mails only
    assert not any(e and e.strip() and e.strip() in done.stdout for _, e in rows)  # no raw value
    text = subprocess.run(cmd[:-1], capture_output=True, text=True, check=False)
    assert "match quality" in text.stdout
    missing = subprocess.run([*cmd[:5], "nope", *cmd[6:-1]], capture_output=True, text=True, check=False)
    assert missing.returncode != 0
    assert "segment 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_plan_per_destination_matches_the_run_and_warns_near_the_audience_cap(env: Env) -> None:
    apply(env, campaign())
    plan = plan_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    # Sizes from the deliveries' own reads (and a count for the holdout) equal a separate assignment pass.
    assert plan["sizes"] == group_sizes(env.workspace, env.store, repos.get_campaign(env.store, "spring"))
    assert plan["sizes"]["holdout"] > 0
    ran = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert ran.ok
    for planned, sent in zip(plan["deliveries"], ran.deliveries, strict=True):
        assert planned["orchestration"] == sent["orchestration"]
        assert (planned["adds"], planned["removes"]) == (sent["add_ids"], sent["remove_ids"])
        assert planned["adds"] == len(members(env, sent["orchestration"]))
        assert sum(planned["rejected_by_reason"].values()) > 0  # the sample's bad e-mails, by reason code
    assert not any("limit of 400" in w for w in plan["warnings"])  # recurring: no new audiences

    # One-time: each delivery creates an audience; an advertiser at 395 gets a warning before anything runs.
    apply(env, campaign(name="flash", timing="one_time", launch_date="2030-02-01"))
    advertiser = env.emulator.seed.advertiser_ids[0]
    assert env.emulator.admin.fill_audiences(advertiser, 393) == 395  # + spring's a and b
    one_time = plan_campaign(env.workspace, env.store, "flash", today=LAUNCH)
    (cap,) = [w for w in one_time["warnings"] if "limit of 400" in w]
    assert "has 395 custom audiences" in cap
    assert "creates 2 more (397)" in cap
    assert one_time["deliveries"][0]["audience_name"] == "flash - a - 2030-02-01"
    assert any("not launched yet" in w for w in one_time["warnings"])
    assert one_time["deliveries"][0]["deferred_adds"] == 0


def test_lookalike_created_once_when_the_audience_is_large_enough(env: Env) -> None:
    spec = {"min_people": 100, "audience_size": "BROAD", "location_ids": ["6252001"]}
    dest = [DEST[0] | {"lookalike": spec}]
    small = {
        "name": "b",
        "percent": 45,
        "destinations": [DEST[0] | {"lookalike": spec | {"min_people": 100_000}}],
    }
    apply(env, campaign(sub_audiences=[{"name": "a", "percent": 45}, small], destinations=dest))
    first = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert first.ok, first.to_dict()
    a, b = first.deliveries
    assert b["lookalike"].startswith("waiting: ")
    assert "lookalike_id" not in b
    made = a["lookalike_id"]
    (source,) = repos.get_audience_states(env.store, "tiktok-audiences", "spring.a.tiktok-audiences")
    audiences = {x["audience_id"]: x for x in env.emulator.admin.state()["audiences"]}
    assert audiences[made]["name"] == "spring - a - lookalike"
    assert audiences[made]["audience_type"] == "Lookalike Audience"
    assert audiences[made]["lookalike_spec"]["source_audience_id"] == source.audience_id
    assert audiences[made]["lookalike_spec"]["audience_size"] == "BROAD"
    again = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert again.deliveries[0]["lookalike_id"] == made  # created once
    after = env.emulator.admin.state()["audiences"]
    assert sum(1 for x in after if x["name"] == "spring - a - lookalike") == 1
