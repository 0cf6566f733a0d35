"""Previews apply forget requests and suppression exactly as a run does (issue 14): `ttsync run --plan` (the CLI
as a process), `campaigns plan` and `segments preview`, against the emulator over HTTP and real DuckDB; a
preview changes nothing of the workspace."""

from __future__ import annotations

import json
from pathlib import Path

from audience_env import ORCH, Env
from test_campaigns import LAUNCH, apply, campaign, emails_of
from test_privacy import _cli, _hashes, _people
from ttsync.app.campaigns import plan_campaign, run_campaign
from ttsync.app.segments import preview_segment
from ttsync.store import repos

_COUNTS = ("add_ids", "remove_ids", "current_ids", "privacy_removed_ids", "suppressed_ids")


def _files(env: Env) -> dict[str, bytes]:
    """Every file of the workspace's state but the store, by path (a preview must leave them as they are)."""
    state = env.workspace.state_dir
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*"))
            if p.is_file() and "ttsync.db" not in p.name}  # fmt: skip


def _plan(env: Env) -> dict[str, int]:
    done = _cli(env, "run", ORCH, "--plan", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    return {k: int(plan.get(k) or 0) for k in _COUNTS}


def _run(env: Env) -> dict[str, int]:
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    plan = next(t for t in outcome.workflow.tasks if t.name == "plan").counts
    return {k: int(plan.get(k) or 0) for k in _COUNTS}


def test_run_plan_counts_forgotten_and_suppressed_people_as_the_run_does(env: Env, tmp_path: Path) -> None:
    first, held, optout = _people(env, 3)
    # Before the audience exists: a forgotten person is never promised as an add.
    assert _cli(env, "forget", "--email", first["email"]).returncode == 0
    preview = _plan(env)
    assert preview["suppressed_ids"] == 1
    assert preview == _run(env)
    assert ("EMAIL_SHA256", first["email_hash"]) not in env.members()
    assert _hashes(held) <= env.members()

    # The audience holds them: one forgotten, one on an uploaded suppression list, the remove guard at 0.
    current = repos.get_orchestration(env.store, ORCH)
    repos.save_orchestration(
        env.store, current.model_copy(update={"settings": {**current.settings, "remove_guard": 0.0}})
    )
    assert _cli(env, "forget", "--key", str(held["amperity_id"])).returncode == 0
    hashed = tmp_path / "optouts.txt"
    hashed.write_text(optout["email_hash"] + "\n", encoding="utf-8")
    assert (
        _cli(env, "suppression", "add", "optouts", "--file", str(hashed), "--type", "EMAIL").returncode == 0
    )
    files = _files(env)
    preview = _plan(env)
    assert _files(env) == files  # the plan sent nothing and changed no snapshot or list
    gone = len(_hashes(held)) + 1
    assert preview["privacy_removed_ids"] == gone
    assert preview["remove_ids"] == 0  # removed before the plan, as the run does: the guard is not tripped
    text = _cli(env, "run", ORCH, "--plan")
    assert text.returncode == 0, text.stderr
    assert "suppressed" in text.stdout
    assert "remove guard" not in text.stdout
    assert preview == _run(env)
    assert not (_hashes(held) | {("EMAIL_SHA256", optout["email_hash"])}) & env.members()


def test_campaign_plan_and_segment_preview_leave_out_forgotten_people(env: Env) -> None:
    apply(env, campaign())
    valuable = emails_of(
        env, "SELECT amperity_id, email FROM Merged_Customers WHERE lifetime_value BETWEEN 300 AND 1999"
    )
    before = preview_segment(env.workspace, env.store, "valuable")
    assert before["suppressed"] == {"identifiers": 0, "people": 0}
    keys = sorted(valuable)[:5]
    listing = env.workspace.root / "forget.txt"
    listing.write_text("".join(f"key:{k}\n" for k in keys), encoding="utf-8")
    assert _cli(env, "forget", "--file", str(listing)).returncode == 0
    after = preview_segment(env.workspace, env.store, "valuable")
    assert after["suppressed"]["identifiers"] >= len(keys)
    assert after["suppressed"]["people"] == len(keys)  # their only identifiers are e-mails here
    assert after["coverage"]["EMAIL"]["people"] == before["coverage"]["EMAIL"]["people"] - len(keys)
    text = _cli(env, "segments", "preview", "valuable")
    assert text.returncode == 0, text.stderr
    assert (
        f"suppressed: {after['suppressed']['identifiers']:,} identifiers, {len(keys)} people" in text.stdout
    )
    assert (
        after["match_quality"]["people_matchable"]
        == before["match_quality"]["people_matchable"] - (after["suppressed"]["people"])
    )

    planned = plan_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert sum(d["suppressed"] for d in planned["deliveries"]) >= 1
    outcome = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert outcome.ok, outcome.to_dict()
    for delivery, item in zip(planned["deliveries"], outcome.deliveries, strict=True):
        (state,) = repos.get_audience_states(env.store, "tiktok-audiences", delivery["orchestration"])
        sent = env.emulator.admin.audience_members(state.audience_id).get("EMAIL_SHA256", set())
        assert delivery["adds"] == len(sent), item  # the plan promised exactly what was sent
        assert not {valuable[k] for k in keys} & sent
