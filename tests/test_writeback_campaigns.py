"""Write-back of campaign runs (docs/writeback.md): `excluded` and `holdout` row outcomes, keyed-hashed keys
only, in real DuckDB (the sample warehouse) after a real campaign run against the emulator, and in a real
PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_env import Env
from test_campaigns import LAUNCH, SEGMENTS, campaign, members
from ttsync.app.campaigns import run_campaign
from ttsync.app.workspace.apply import apply_config
from ttsync.config.file import WorkspaceFile
from ttsync.config.writeback import WritebackConfig
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.store import repos
from ttsync.writeback.campaign import CampaignRun, write_campaign_run
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher
from ttsync.writeback.stored import save_writeback

# A suppression segment: everyone whose customer number ends in 7 (with their e-mails).
OPTOUTS = {"name": "optouts", "source": "warehouse", "key_column": "amperity_id", "suppression": True,
           "query": "SELECT amperity_id, email FROM Merged_Customers WHERE customer_number % 10 = 7"}  # fmt: skip


def _rows(env: Env, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_campaign_run_writes_excluded_and_holdout_rows(env: Env) -> None:
    save_writeback(env.workspace.state_dir, WritebackConfig.model_validate({}))
    config = WorkspaceFile.model_validate({"segments": [*SEGMENTS, OPTOUTS], "campaigns": [campaign()]})
    apply_config(env.store, config, today=LAUNCH)
    outcome = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert outcome.ok, outcome.to_dict()
    assert outcome.writeback_problem is None

    hasher = workspace_hasher(env.store)
    audience = [
        k for (k,) in _rows(env, "SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= 300")
    ]
    top = {k for (k,) in _rows(env, "SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= 2000")}
    optout = {
        k for (k,) in _rows(env, "SELECT amperity_id FROM Merged_Customers WHERE customer_number % 10 = 7")
    }
    want = {}
    for key in audience:  # the first reason that applies: the campaign's exclusions, then suppression
        if key in top:
            want[key] = "exclusion:top-spenders"
        elif key in optout:
            want[key] = "suppression:optouts"
    stored = dict(zip(want, stored_row_keys(hasher, list(want)), strict=True))
    got = _rows(
        env,
        "SELECT row_key, status, reason, identifier_type FROM ttsync.ttsync_row_outcomes WHERE workflow_id = "
        f"'{outcome.run_id}'",
    )
    excluded = {(r[0], r[2]) for r in got if r[1] == "excluded"}
    assert excluded == {(stored[k], why) for k, why in want.items()}
    assert {r[2] for r in got} >= {"exclusion:top-spenders", "suppression:optouts"}
    held = set(
        pq.read_table(env.workspace.state_dir / "campaigns" / "spring.holdout.parquet")["row_key"].to_pylist()
    )
    assert {r[0] for r in got if r[1] == "holdout"} == held
    assert len(held) == outcome.holdout > 0
    assert not {r[0] for r in got} & set(audience)  # keyed-hashed: no raw key
    assert all(r[0].startswith("hk:") for r in got)
    (run,) = _rows(
        env, f"SELECT kind, status, campaign FROM ttsync.ttsync_runs WHERE workflow_id = '{outcome.run_id}'"
    )
    assert run == ("campaign", "sent", "spring")

    # The suppression segment's e-mails reached no group (by identifier, in every run).
    sent = members(env, "spring.a.tiktok-audiences") | members(env, "spring.b.tiktok-audiences")
    optout_emails = set()
    for (email,) in _rows(env, "SELECT email FROM Merged_Customers WHERE customer_number % 10 = 7"):
        try:
            optout_emails.add(hash_identifier("email", email or ""))
        except InvalidIdentifier:
            continue
    assert optout_emails
    assert not sent & optout_emails

    # A second run writes its own rows; the first run's stay (one row set per run id, never duplicated).
    again = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    counts = dict(
        _rows(env, "SELECT workflow_id, count(*) FROM ttsync.ttsync_row_outcomes WHERE workflow_id LIKE "
                   "'campaign-%' GROUP BY 1")
    )  # fmt: skip
    assert counts == {outcome.run_id: len(got), again.run_id: len(got)}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from pg import missing_reason, postgres_server

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


def test_campaign_rows_in_postgres_replace_on_rewrite(
    env: Env, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    monkeypatch.setenv("WRITEBACK_URL", pg_url)
    save_writeback(env.workspace.state_dir, WritebackConfig.model_validate({"url_env": "WRITEBACK_URL"}))
    source = repos.get_source(env.store, "warehouse")
    excluded = pa.table({"row_key": ["hk:aa", "hk:bb"], "reason": ["exclusion:x", "suppression:y"]})
    holdout = pa.table({"row_key": ["hk:cc"]})
    run = CampaignRun("campaign-pg", "spring", "sent", datetime.now(UTC))
    for _ in range(2):  # written twice (a retried write): one copy
        assert (
            write_campaign_run(env.workspace.state_dir, env.workspace.root, source, run, excluded, holdout)
            is None
        )
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        rows = con.execute(
            sa.text("SELECT row_key, status, reason FROM ttsync.ttsync_row_outcomes WHERE workflow_id = 'campaign-pg' "
                    "ORDER BY row_key")
        ).all()  # fmt: skip
        kind = con.execute(
            sa.text("SELECT kind FROM ttsync.ttsync_runs WHERE workflow_id = 'campaign-pg'")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("hk:aa", "excluded", "exclusion:x"), ("hk:bb", "excluded", "suppression:y"), ("hk:cc", "holdout", None)
    ]  # fmt: skip
    assert [tuple(k) for k in kind] == [("campaign",)]


def test_writeback_problem_never_fails_the_campaign(env: Env, tmp_path: Any) -> None:
    outside = tmp_path.parent / "elsewhere.duckdb"
    save_writeback(env.workspace.state_dir, WritebackConfig.model_validate({"path": str(outside)}))
    config = WorkspaceFile.model_validate({"segments": SEGMENTS, "campaigns": [campaign()]})
    apply_config(env.store, config, today=LAUNCH)
    outcome = run_campaign(env.workspace, env.store, "spring", today=LAUNCH)
    assert outcome.ok
    assert outcome.writeback_problem is not None
    assert "outside the workspace" in outcome.writeback_problem
