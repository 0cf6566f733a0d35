"""`ttsync forget --now` beyond partner audiences (issue 14): customer-file audiences, forgotten warehouse keys,
the run lease it shares with syncs, and two `forget` processes at once. Emulator over HTTP, real DuckDB and
SQLite, the CLI as a process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import duckdb

from audience_env import ORCH, Env
from test_pii_scan import assert_no_leaks, raw_values
from test_privacy import _cli, _hashes, _people, _snapshot_hashes
from ttsync.app.audit import entries
from ttsync.app.privacy_list import FORGET, listed
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.store import repos
from ttsync.store.leases import Holder, acquire, get_lease, orchestration_resource, release


def _customer_file(env: Env) -> None:
    destination = repos.get_destination(env.store, "tiktok-audiences")
    settings = destination.settings | {"delivery": "customer_file", "user_id_types": ["EMAIL"]}
    repos.save_destination(env.store, destination.model_copy(update={"settings": settings}))


def test_forget_now_removes_from_a_customer_file_audience_at_once(env: Env) -> None:
    _customer_file(env)
    assert env.run().ok
    person, later = _people(env, 2)
    gone = ("EMAIL_SHA256", person["email_hash"])
    before = env.members()
    assert gone in before
    assert gone in _snapshot_hashes(env, ORCH, env.audience_id())

    done = _cli(env, "forget", "--email", person["email"], "--now", "--json")
    assert done.returncode == 0, done.stderr
    (applied,) = json.loads(done.stdout)["now"]
    assert applied["status"] == "removed", applied
    assert applied["removed"] == [f"{gone[0]}:{gone[1]}"]
    assert env.members() == before - {gone}  # a REMOVE file update: nobody else touched
    assert gone not in _snapshot_hashes(env, ORCH, env.audience_id())
    rows = json.loads(_cli(env, "forget", "--report", "--json").stdout)["rows"]
    assert [(r["held"], r["removal_sent"]) for r in rows] == [(False, True)]

    # Without --now, the next run removes a forgotten person from the customer-file audience the same way.
    assert _cli(env, "forget", "--email", later["email"]).returncode == 0
    after = env.run()
    assert after.ok, after.workflow.error
    assert next(t for t in after.workflow.tasks if t.name == "plan").counts["privacy_removed_ids"] == 1
    assert env.members() == before - {gone, ("EMAIL_SHA256", later["email_hash"])}
    emails, phones = raw_values(env.workspace.sample_warehouse)
    assert_no_leaks([env.workspace.state_dir], [done.stdout, done.stderr], emails, phones)


def test_forget_now_refuses_a_removal_that_would_leave_a_customer_file_audience_too_small(env: Env) -> None:
    # TikTok refuses any update that leaves fewer than 1,000 people (ref §2.4 step 3): say so, exit non-zero,
    # keep the snapshot (the audience still holds them); the request stays for the next run.
    _customer_file(env)
    assert env.run().ok
    held = {h for s, h in env.members() if s == "EMAIL_SHA256"}
    query = repos.get_orchestration(env.store, ORCH).query
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        emails = [
            e for (e,) in con.execute(f"SELECT email FROM ({query}) WHERE email IS NOT NULL").fetchall()
        ]
    by_hash: dict[str, str] = {}
    for email in emails:
        with contextlib.suppress(InvalidIdentifier):
            digest = hash_identifier("email", email)
            if digest in held:
                by_hash.setdefault(digest, email)
    assert len(by_hash) == len(held) > 1000
    chosen = sorted(by_hash)[: len(held) - 999]  # would leave 999
    listing = env.workspace.root / "forget.txt"
    listing.write_text("".join(f"email:{by_hash[d]}\n" for d in chosen), encoding="utf-8")
    done = _cli(env, "forget", "--file", str(listing), "--now", "--json")
    listing.unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    (applied,) = json.loads(done.stdout)["now"]
    assert applied["status"] == "failed"
    assert "fewer than 1,000" in applied["reason"]
    assert {h for s, h in env.members() if s == "EMAIL_SHA256"} == held
    assert set(chosen) <= {h for _, h in _snapshot_hashes(env, ORCH, env.audience_id())}


def test_forget_now_by_key_removes_the_keys_identifiers_at_once(env: Env) -> None:
    assert env.run().ok
    (person,) = _people(env, 1)
    gone = _hashes(person)
    before = env.members()
    assert gone <= before

    done = _cli(env, "forget", "--key", str(person["amperity_id"]), "--now", "--json")
    assert done.returncode == 0, done.stderr
    (applied,) = json.loads(done.stdout)["now"]
    assert applied["status"] == "removed", applied
    assert sorted(applied["removed"]) == sorted(f"{s}:{h}" for s, h in gone)
    assert env.members() == before - gone
    assert not gone & _snapshot_hashes(env, ORCH, env.audience_id())
    audit = next(e for e in entries(env.store, limit=5) if e.action == "privacy.forget_now")
    assert audit.details["hashes"] == sorted(f"{s}:{h}" for s, h in gone)
    assert str(person["amperity_id"]) not in json.dumps(audit.details)


def test_forget_now_takes_the_run_lease_and_refuses_while_a_sync_holds_it(env: Env) -> None:
    assert env.run().ok
    (person,) = _people(env, 1)
    gone = ("EMAIL_SHA256", person["email_hash"])
    # A sync of the orchestration in another live process (its pid exists) holds the orchestration's lease.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = Holder(sleeper.pid, Holder.me().host)
        acquire(env.store, orchestration_resource(ORCH), "sync-1", timeout=60, holder=holder)
        done = _cli(env, "forget", "--email", person["email"], "--now", "--wait", "1", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        (applied,) = json.loads(done.stdout)["now"]
        assert applied["status"] == "busy"
        assert "sync-1" in applied["reason"]
        assert "forget --now" in applied["reason"]
        assert gone in env.members()  # nothing sent while the sync runs
        release(env.store, "sync-1", holder=holder)
    finally:
        sleeper.kill()
        sleeper.wait()
    again = _cli(env, "forget", "--email", person["email"], "--now", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["now"][0]["status"] == "removed"
    assert gone not in env.members()
    assert get_lease(env.store, orchestration_resource(ORCH)) is None  # forget --now released its lease


def test_two_forget_processes_at_once_lose_no_entry(env: Env) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from ttsync.app.privacy_list import forget
        from ttsync.app.workspace.layout import Workspace
        workspace = Workspace(Path(sys.argv[1]))
        store = workspace.open_store()
        for i in range(int(sys.argv[3])):
            forget(workspace.state_dir, store, emails=[f"p{sys.argv[2]}-{i}@example.com"])
        """
    )
    per_process = 25
    environ = os.environ | env.environ
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(env.workspace.root), tag, str(per_process)], env=environ
        )
        for tag in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert listed(env.workspace.state_dir)[FORGET] == 2 * per_process
    assert sum(1 for e in entries(env.store, limit=500) if e.action == "privacy.forget") == 2 * per_process
