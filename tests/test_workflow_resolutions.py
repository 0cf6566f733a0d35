"""Each resolution provoked from a real emulator condition, then fixed the way a user would, then continued
with the resolution's action; the audience must end equal to the query (nothing lost, nothing extra)."""

from __future__ import annotations

import pytest

from audience_env import ORCH, Env
from ttsync.app.runs import RunOutcome, build_run, continue_run
from ttsync.destinations.tiktok.client import RetryPolicy
from ttsync.destinations.tiktok.pipelines.base import RunOptions
from ttsync.errors import ConfigError
from ttsync.store import repos
from ttsync.workflows.resolutions import resolution_for

FAST_RETRY = RetryPolicy(max_attempts=2, max_total_seconds=5, wait_initial=0.01, wait_max=0.05, wait_jitter=0)


def failed_with(env: Env, outcome: RunOutcome, resolution: str, task: str) -> str:
    """Assert the workflow failed with `resolution` in `task` and raised a notification; return its id."""
    assert not outcome.ok
    error = outcome.workflow.error or {}
    assert (error.get("resolution"), error.get("task")) == (resolution, task), error
    notes = repos.list_notifications(env.store)
    assert any(n.workflow_id == outcome.workflow.id and n.resolution == resolution for n in notes)
    return outcome.workflow.id


def resolve(env: Env, workflow_id: str, action: str = "resolve", **options: object) -> RunOutcome:
    run_ = build_run(env.workspace, env.store, ORCH, options=RunOptions(**options))  # type: ignore[arg-type]
    return continue_run(run_, workflow_id, action)


def test_advertiser_not_found_then_fixed_id_resolves(env: Env) -> None:
    first_advertiser, second_advertiser = env.emulator.seed.advertiser_ids
    env.emulator.admin.delete_advertiser(first_advertiser)
    workflow_id = failed_with(env, env.run(), "advertiser_not_found", "verify_audience")
    assert resolution_for("advertiser_not_found").action.value == "resolve"
    # The fix: point the destination at an advertiser that exists (as editing ttsync.yaml + apply would).
    destination = repos.get_destination(env.store, "tiktok-audiences")
    settings = destination.settings | {"advertiser_ids": [second_advertiser]}
    repos.save_destination(env.store, destination.model_copy(update={"settings": settings}))
    resolved = resolve(env, workflow_id)
    assert resolved.ok, resolved.workflow.error
    audience_id = resolved.workflow.counts["verify_audience"]["audience_id"]
    assert env.emulator.admin.audience(audience_id)["owner_id"] == second_advertiser
    assert env.members(audience_id) == env.expected()


def test_revoked_token_then_new_token_resolves(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.emulator.admin.revoke_token(env.emulator.seed.operator_token)
    workflow_id = failed_with(env, env.run(), "invalid_credentials", "verify_audience")
    # Resolving before fixing is refused with what is still wrong, and runs nothing.
    with pytest.raises(ConfigError, match="invalid_credentials"):
        resolve(env, workflow_id)
    fresh = env.emulator.admin.create_token("ops2", env.emulator.seed.advertiser_ids, "Operator")
    env.reapply(monkeypatch, TTSYNC_ACCESS_TOKEN=fresh["access_token"])
    resolved = resolve(env, workflow_id)
    assert resolved.ok, resolved.workflow.error
    assert env.members() == env.expected()


def test_analyst_role_then_operator_resolves(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.reapply(monkeypatch, TTSYNC_ACCESS_TOKEN=env.emulator.seed.analyst_token)
    workflow_id = failed_with(env, env.run(), "missing_advertiser_permissions", "verify_audience")
    env.reapply(monkeypatch, TTSYNC_ACCESS_TOKEN=env.emulator.seed.operator_token)
    resolved = resolve(env, workflow_id)
    assert resolved.ok, resolved.workflow.error
    assert env.members() == env.expected()


def test_audience_limit_then_deleting_one_resolves(env: Env) -> None:
    advertiser = env.emulator.seed.advertiser_ids[0]
    assert env.emulator.admin.fill_audiences(advertiser, 400) == 400
    workflow_id = failed_with(env, env.run(), "audience_limit_reached", "verify_audience")
    # The fix (done by the user in TikTok Ads Manager): delete an audience that is no longer used.
    filler = next(a for a in env.emulator.admin.state()["audiences"] if a["owner_id"] == advertiser)
    env.emulator.admin.delete_audience(filler["audience_id"])
    resolved = resolve(env, workflow_id)
    assert resolved.ok, resolved.workflow.error
    assert env.members() == env.expected()


def test_tiktok_unavailable_then_retry_continues_without_resending(env: Env) -> None:
    # Half the batches go through, then TikTok keeps failing the mapping endpoint until retries run out.
    admin = env.emulator.admin
    admin.set_faults(rate=1.0, codes=[50002], paths=["segment/mapping/"])
    workflow_id = failed_with(env, env.run(retry=FAST_RETRY, batch_rows=500), "tiktok_unavailable", "upload")
    assert env.members() == set()
    admin.clear_faults()
    retried = resolve(env, workflow_id, action="retry", retry=FAST_RETRY, batch_rows=500)
    assert retried.ok, retried.workflow.error
    assert env.members() == env.expected()
    upload = next(t for t in retried.workflow.tasks if t.name == "upload")
    assert upload.attempts == 2
