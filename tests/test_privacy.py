"""Forget requests and suppression lists (docs/campaigns.md): real runs against the emulator over HTTP, the CLI
as a process, real DuckDB; the privacy removal bypasses a remove guard of 0 and nothing raw reaches disk."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from audience_env import KINDS, ORCH, Env
from test_pii_scan import assert_no_leaks, raw_values
from ttsync.app.audit import entries
from ttsync.app.runs import build_run, start_run
from ttsync.config.writeback import WritebackConfig
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.identity.digests import HEX_SQL
from ttsync.store import repos
from ttsync.sync.snapshot import snapshot_path, snapshot_sql
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher
from ttsync.writeback.stored import save_writeback


def _cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ttsync", *args, "--workspace", str(env.workspace.root)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def _people(env: Env, n: int) -> list[dict[str, Any]]:
    """`n` audience members whose e-mail is valid and nobody else's."""
    sql = (
        "SELECT amperity_id, email, phone, country, idfa, aaid FROM Merged_Customers WHERE lifetime_value >= 500 "
        "AND email IN (SELECT email FROM Merged_Customers GROUP BY email HAVING count(*) = 1) "
        "AND phone IN (SELECT phone FROM Merged_Customers GROUP BY phone HAVING count(*) = 1) ORDER BY amperity_id"
    )
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    out = []
    for row in rows:
        with contextlib.suppress(InvalidIdentifier):
            row["email_hash"] = hash_identifier("email", row["email"])
            out.append(row)
        if len(out) == n:
            break
    return out


def _hashes(row: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for column, (kind, schema) in KINDS.items():
        if row.get(column) is None:
            continue
        with contextlib.suppress(InvalidIdentifier):
            out.add((schema, hash_identifier(kind, str(row[column]), region=row.get("country") or "US")))
    return out


def test_forget_and_suppression_remove_at_next_run_past_a_zero_guard(env: Env, tmp_path: Path) -> None:
    save_writeback(env.workspace.state_dir, WritebackConfig.model_validate({}))
    assert env.run().ok
    by_email, by_key, suppressed = _people(env, 3)
    for person in (by_email, by_key, suppressed):
        assert _hashes(person) <= env.members()
    # The guard at 0: any ordinary removal would stop the run; a privacy request is not ordinary.
    current = repos.get_orchestration(env.store, ORCH)
    repos.save_orchestration(
        env.store, current.model_copy(update={"settings": {**current.settings, "remove_guard": 0.0}})
    )

    done = _cli(env, "forget", "--email", f"  {by_email['email'].upper()} ", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["identifiers"] == 1
    listing = tmp_path / "forget.txt"
    listing.write_text(f"# a request\nkey:{by_key['amperity_id']}\nphone:not a phone\n", encoding="utf-8")
    done = _cli(env, "forget", "--file", str(listing), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"request": ""} == {
        "request": "", "identifiers": 0, "keys": 1, "rejected": {"invalid_phone": 1}
    }  # fmt: skip
    hashed = tmp_path / "optouts.txt"
    hashed.write_text(f"{suppressed['email_hash'].upper()}\nnot-a-hash\n", encoding="utf-8")
    done = _cli(env, "suppression", "add", "optouts", "--file", str(hashed), "--type", "EMAIL", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rejected"] == {"not_sha256_hex": 1}

    second = env.run()
    assert second.ok, second.workflow.error
    members = env.members()
    assert ("EMAIL_SHA256", by_email["email_hash"]) not in members
    assert not _hashes(by_key) & members  # every identifier of the forgotten key
    assert ("EMAIL_SHA256", suppressed["email_hash"]) not in members
    plan = next(t for t in second.workflow.tasks if t.name == "plan").counts
    assert plan["privacy_removed_ids"] == 2 + len(_hashes(by_key))
    assert plan["remove_ids"] == 0  # removed before the plan: nothing for the guard to weigh
    assert members == env.expected() - {("EMAIL_SHA256", by_email["email_hash"]),
                                        ("EMAIL_SHA256", suppressed["email_hash"])} - _hashes(by_key)  # fmt: skip

    third = env.run()  # never re-added
    assert third.ok
    assert env.members() == members

    # Write-back explains it: excluded, with the reason, by the stored row key (keyed-hashed UUIDs).
    hasher = workspace_hasher(env.store)
    keys = stored_row_keys(
        hasher, [by_email["amperity_id"], by_key["amperity_id"], suppressed["amperity_id"]]
    )
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT row_key, identifier_type, reason FROM ttsync.ttsync_row_outcomes "
            "WHERE workflow_id = ? AND status = 'excluded'",
            [third.workflow.id],
        ).fetchall()
    assert (keys[0], "EMAIL", "forgotten") in rows
    assert (keys[2], "EMAIL", "suppressed") in rows
    assert {r[1] for r in rows if r[0] == keys[1]} == {s.split("_")[0] for s, _ in _hashes(by_key)}

    # Audit: the request's hash, the audiences touched; never a raw value anywhere on disk.
    audit = entries(env.store, limit=20)
    forgot = next(e for e in audit if e.action == "privacy.forget" and e.details.get("hashes"))
    assert forgot.details["hashes"] == [by_email["email_hash"]]
    assert any(e.action == "privacy.removed" and e.target == f"audience:{env.audience_id()}" for e in audit)
    raw = [by_email["email"], by_key["email"], suppressed["email"], str(by_key["phone"])]
    for path in env.workspace.state_dir.rglob("*"):  # the store (state/ttsync.db) included
        if path.is_file():
            data = path.read_bytes()
            assert not any(value.encode() in data for value in raw), path


def test_forget_refuses_nothing_usable_without_echoing_it(env: Env) -> None:
    done = _cli(env, "forget", "--email", "not-an-email")
    assert done.returncode != 0
    assert "invalid_email" in done.stderr
    assert "not-an-email" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def _snapshot_hashes(env: Env, orchestration: str, audience_id: str) -> set[tuple[str, str]]:
    path = snapshot_path(env.workspace.state_dir, f"tiktok-audiences__{orchestration}", audience_id)
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT id_schema, {HEX_SQL} FROM {snapshot_sql(path)}").fetchall()
    return {(str(s), str(h)) for s, h in rows}


def test_forget_now_removes_from_every_audience_and_snapshot_at_once(env: Env) -> None:
    # A second audience of the workspace (same people, its own TikTok audience and snapshot).
    second = "high-value-copy"
    current = repos.get_orchestration(env.store, ORCH)
    repos.save_orchestration(env.store, current.model_copy(update={"name": second}))
    assert env.run().ok
    assert start_run(build_run(env.workspace, env.store, second)).ok
    audiences = {
        ORCH: env.audience_id(),
        second: repos.get_audience_states(env.store, "tiktok-audiences", second)[0].audience_id,
    }
    assert len(set(audiences.values())) == 2
    by_email, by_phone = _people(env, 2)
    phone_hash = hash_identifier("phone", str(by_phone["phone"]), region=by_phone["country"] or "US")
    gone = {("EMAIL_SHA256", by_email["email_hash"]), ("PHONE_SHA256", phone_hash)}
    before = {name: env.members(aid) for name, aid in audiences.items()}
    for name, aid in audiences.items():
        assert gone <= before[name]
        assert gone <= _snapshot_hashes(env, name, aid)

    args = ["forget", "--email", by_email["email"], "--phone", str(by_phone["phone"])]
    done = _cli(env, *args, "--region", by_phone["country"] or "US", "--now", "--json")
    assert done.returncode == 0, done.stderr
    applied = {a["audience_id"]: a for a in json.loads(done.stdout)["now"]}
    assert set(applied) == set(audiences.values())
    for name, aid in audiences.items():
        assert applied[aid]["status"] == "removed"
        assert sorted(applied[aid]["removed"]) == sorted(f"{s}:{h}" for s, h in gone)
        assert env.members(aid) == before[name] - gone  # nobody else touched
        assert not gone & _snapshot_hashes(env, name, aid)

    report = _cli(env, "forget", "--report", "--json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert {(r["id_schema"], r["hash_prefix"], r["audience_id"]) for r in rows} == {
        (s, h[:12], aid) for s, h in gone for aid in audiences.values()
    }
    assert all(r["snapshot"] and not r["held"] and r["removal_sent"] for r in rows)
    text = _cli(env, "forget", "--report")
    assert text.returncode == 0
    assert "HELD" not in text.stdout
    assert "removal sent" in text.stdout

    audit = next(e for e in entries(env.store, limit=5) if e.action == "privacy.forget_now")
    assert audit.details["hashes"] == sorted(f"{s}:{h}" for s, h in gone)
    assert {a["audience_id"] for a in audit.details["audiences"]} == set(audiences.values())

    after = env.run()  # the next run neither re-adds them nor has anything left to remove
    assert after.ok, after.workflow.error
    assert "privacy_removed_ids" not in next(t for t in after.workflow.tasks if t.name == "plan").counts
    assert env.members() == before[ORCH] - gone
    emails, phones = raw_values(env.workspace.sample_warehouse)
    assert_no_leaks(
        [env.workspace.state_dir], [done.stdout, done.stderr, report.stdout, text.stdout], emails, phones
    )


def test_forget_report_alone_and_empty(env: Env) -> None:
    empty = _cli(env, "forget", "--report")
    assert empty.returncode == 0, empty.stderr
    assert "no forgotten identifier" in empty.stdout
    mixed = _cli(env, "forget", "--report", "--email", "someone@example.com")
    assert mixed.returncode != 0
    assert "--report" in mixed.stderr
    assert "someone@example.com" not in mixed.stderr + mixed.stdout
    assert "Traceback" not in mixed.stderr
