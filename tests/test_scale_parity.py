"""Done-when of scale-out: the sample workspace synced through the local path, DuckDB and PostgreSQL pushdown
and Spark local[2] gives the same audience in the emulator, the same match report and the same rejects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
import yaml

from audience_env import ORCH, Env
from pg import missing_reason, postgres_server
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.layout import load_config
from ttsync.config.models import Source
from ttsync.sample.generator import apply_churn
from ttsync.sources import open_source
from ttsync.store import repos
from ttsync.sync.columns import audience_column_specs
from ttsync.sync.prepare import prepare_to_parquet

# Pushdown parses no phone numbers and the sample's phones are national: those paths sync the other types.
NO_PHONE = "SELECT amperity_id, email, idfa, aaid FROM Merged_Customers WHERE lifetime_value >= 500"
WITH_PHONE = (
    "SELECT amperity_id, email, phone, country, idfa, aaid FROM Merged_Customers WHERE lifetime_value >= 500"
)


def _configure(env: Env, source: dict[str, Any], query: str) -> None:
    """Point the sample's orchestration at `source` with `query`, and apply the config again."""
    path = env.workspace.config_path
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["sources"] = [source]
    for orchestration in config["orchestrations"]:
        if orchestration["name"] == ORCH:
            orchestration["query"] = query
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    apply_config(env.store, load_config(path))


def _local_report(env: Env, query: str) -> dict[str, Any]:
    """The match report of the local path (DuckDB source, identity in this process) for `query`."""
    warehouse = Source(name="local", kind="duckdb", path=str(env.workspace.sample_warehouse))
    with open_source(warehouse, env.workspace.root) as src:
        specs = audience_column_specs(
            user_id_types=["EMAIL", "PHONE", "IDFA", "AAID"],
            mapping={"email": "EMAIL", "phone": "PHONE", "idfa": "IDFA", "aaid": "AAID", "country": "REGION"},
            columns=src.columns(query),
            default_region="US",
        )
        out = prepare_to_parquet(
            src.stream(query), specs=specs, key_column="amperity_id", out_dir=env.workspace.root / "local"
        )
    return out.report.to_dict()


def _sync_and_check(env: Env, query: str) -> dict[str, Any]:
    """Run the orchestration; the emulator's audience must be the scalar reference's set for `query`, and the
    run's match report the local path's. Returns the run's prepare counts."""
    outcome = env.run()
    assert outcome.ok, outcome.to_dict().get("error")
    assert env.members() == env.expected()
    prepare = next(t for t in outcome.workflow.tasks if t.name == "prepare").counts
    assert prepare["match_report"] == _local_report(env, query)
    return prepare


def test_duckdb_pushdown_gives_the_local_audience(env: Env) -> None:
    source = {"name": "warehouse", "kind": "duckdb", "path": "warehouse.duckdb", "hash_in_warehouse": True}
    _configure(env, source, NO_PHONE)
    counts = _sync_and_check(env, NO_PHONE)
    assert counts["match_report"]["types"][0]["rejected"]  # the sample has bad emails: rejects compared too


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.mark.postgres
def test_postgresql_pushdown_gives_the_local_audience(env: Env, pg_url: str) -> None:
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT amperity_id, email, idfa, aaid, lifetime_value FROM Merged_Customers"
        ).fetchall()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'CREATE TABLE "Merged_Customers" (amperity_id TEXT, email TEXT, idfa TEXT, aaid TEXT, lifetime_value DOUBLE PRECISION)'
            )
        )
        conn.execute(
            sa.text('INSERT INTO "Merged_Customers" VALUES (:a, :e, :i, :g, :v)'),
            [{"a": r[0], "e": r[1], "i": r[2], "g": r[3], "v": r[4]} for r in rows],
        )
    engine.dispose()
    query = NO_PHONE.replace("Merged_Customers", '"Merged_Customers"')
    source = {"name": "warehouse", "kind": "sqlalchemy", "url": pg_url, "hash_in_warehouse": True}
    _configure(env, source, query)
    # The local reference reads the same rows from the DuckDB sample (the table name there is unquoted).
    outcome = env.run()
    assert outcome.ok, outcome.to_dict().get("error")
    assert env.members() == _expected_from_duckdb(env, NO_PHONE)
    prepare = next(t for t in outcome.workflow.tasks if t.name == "prepare").counts
    assert prepare["match_report"] == _local_report(env, NO_PHONE)


def _expected_from_duckdb(env: Env, query: str) -> set[tuple[str, str]]:
    orchestration = repos.get_orchestration(env.store, ORCH)
    saved = orchestration.query
    repos.save_orchestration(env.store, orchestration.model_copy(update={"query": query}))
    try:
        return env.expected()
    finally:
        repos.save_orchestration(env.store, orchestration.model_copy(update={"query": saved}))


def test_spark_local_gives_the_local_audience(env: Env, spark_local: Any) -> None:
    parquet = env.workspace.root / "customers.parquet"

    def export() -> None:
        # Small row groups and splits: the sample spreads over several partitions, so reports really merge.
        with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
            con.execute(f"COPY Merged_Customers TO '{parquet}' (FORMAT parquet, ROW_GROUP_SIZE 1000)")

    export()
    spark_local.conf.set("spark.sql.files.maxPartitionBytes", "32768")
    # Snapshots on Spark's file system (a file:// URI here; s3a://, abfss://, gs:// alike on a cluster).
    lake = env.workspace.root / "lake" / "snapshots"
    source = {"name": "warehouse", "kind": "spark", "master": "local[2]", "path": "customers.parquet",
              "table": "Merged_Customers", "snapshot_uri": lake.as_uri()}  # fmt: skip
    _configure(env, source, WITH_PHONE)
    assert spark_local.read.parquet(str(parquet)).rdd.getNumPartitions() > 1
    outcome = env.run()
    assert outcome.ok, outcome.to_dict().get("error")
    assert env.members() == _expected_from_duckdb(env, WITH_PHONE)
    versions = lake / f"tiktok-audiences__{ORCH}" / env.audience_id()
    assert sorted(p.name for p in versions.iterdir()) == ["v000001"]
    assert (versions / "v000001" / "_SUCCESS").exists()
    assert not list(env.workspace.state_dir.glob("snapshots/**/*.parquet"))  # none in the workspace
    prepare = next(t for t in outcome.workflow.tasks if t.name == "prepare").counts
    local = _local_report(env, WITH_PHONE)
    assert prepare["match_report"] == local
    assert any(t["id_schema"] == "PHONE_SHA256" and t["rejected"] for t in local["types"])
    # A re-sync after churn: the diff in Spark adds and removes, and the audience follows the warehouse.
    churn = apply_churn(env.workspace.sample_warehouse, fraction=0.05)
    assert churn["left_segment"] > 0
    assert churn["joined_segment"] > 0
    export()
    again = env.run()
    assert again.ok, again.to_dict().get("error")
    plan = next(t for t in again.workflow.tasks if t.name == "plan").counts
    assert plan["add_ids"] > 0
    assert plan["remove_ids"] > 0
    assert not plan["full_upload"]
    assert env.members() == _expected_from_duckdb(env, WITH_PHONE)
    assert sorted(p.name for p in versions.iterdir() if p.is_dir()) == ["v000001", "v000002"]
    commit = next(t for t in again.workflow.tasks if t.name == "commit").counts
    assert commit["snapshot_ids"] == plan["current_ids"]


def test_spark_connect_client_plans_the_local_audience(env: Env, spark_connect_url: str) -> None:
    """A `sc://` source: `ttsync run --plan` in a child process is only a Spark Connect client (no JVM of its
    own); identity runs on the server's executors and gives the local path's plan and match report."""
    local = _ttsync(env, "run", ORCH, "--plan", "--json")
    assert local.returncode == 0, local.stderr
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        con.execute(f"COPY Merged_Customers TO '{env.workspace.root / 'customers.parquet'}' (FORMAT parquet)")
    source = {"name": "warehouse", "kind": "spark", "master": spark_connect_url, "path": "customers.parquet",
              "table": "Merged_Customers"}  # fmt: skip
    _configure(env, source, WITH_PHONE)
    remote = _ttsync(env, "run", ORCH, "--plan", "--json")
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert remote.stderr == ""
    expected, got = json.loads(local.stdout), json.loads(remote.stdout)
    assert got["plan"] == expected["plan"]
    assert got["plan"]["add_ids"] > 0
    assert got["match_report"] == expected["match_report"]


def _ttsync(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environ = (
        {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}
        | env.environ
        | {"COLUMNS": "250"}
    )
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args], cwd=env.workspace.root, env=environ, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def test_plan_show_sql_prints_what_the_warehouse_runs(env: Env) -> None:
    source = {"name": "warehouse", "kind": "duckdb", "path": "warehouse.duckdb", "hash_in_warehouse": True}
    _configure(env, source, NO_PHONE)
    done = _ttsync(env, "run", ORCH, "--plan", "--show-sql", "--json")
    assert done.returncode == 0, done.stderr
    preview = json.loads(done.stdout)
    assert "SHA256(LOWER(" in preview["warehouse_sql"]
    assert "FROM Merged_Customers WHERE lifetime_value >= 500" in preview["warehouse_sql"]
    assert preview["plan"]["current_ids"] > 0
    text = _ttsync(env, "run", ORCH, "--plan", "--show-sql")
    assert text.returncode == 0, text.stderr
    assert "SQL run in the warehouse" in text.stdout
    assert "__ttsync_reason__email" in text.stdout
    plain = _ttsync(env, "run", ORCH, "--plan", "--json")
    assert "warehouse_sql" not in json.loads(plain.stdout)


def test_national_phones_are_refused_with_the_fix(env: Env) -> None:
    source = {"name": "warehouse", "kind": "duckdb", "path": "warehouse.duckdb", "hash_in_warehouse": True}
    _configure(env, source, WITH_PHONE)
    done = _ttsync(env, "run", ORCH, "--plan")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "e164_columns" in output
    assert "Traceback" not in output
    assert "internal_error" not in output


def test_offline_events_refuse_a_pushdown_source(env: Env) -> None:
    source = {"name": "warehouse", "kind": "duckdb", "path": "warehouse.duckdb", "hash_in_warehouse": True}
    _configure(env, source, NO_PHONE)
    done = _ttsync(env, "run", "store-purchases-last-7-days", "--plan")
    assert done.returncode != 0
    assert "applies to audiences only" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_offline_events_on_spark_through_the_cli(env: Env, spark_connect_url: str) -> None:
    """The sample's events query through `ttsync run` on Spark: a Spark Connect client (no JVM of its own)
    sends what the local path plans, rejects alike; a re-run in a child that starts its own JVM sends nothing
    new; and the terminal shows what a local run shows (no JVM or log4j lines on stderr)."""
    events = "store-purchases-last-7-days"
    local = _ttsync(env, "run", events, "--plan", "--json")
    assert local.returncode == 0, local.stderr
    planned = json.loads(local.stdout)["totals"]
    assert planned["planned"] > 0
    query = repos.get_orchestration(env.store, events).query
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:  # the joined rows
        con.execute(f"COPY ({query}) TO '{env.workspace.root / 'purchases.parquet'}' (FORMAT parquet)")
    source = {"name": "warehouse", "kind": "spark", "master": spark_connect_url, "path": "purchases.parquet",
              "table": "purchases"}  # fmt: skip
    _configure(env, source, NO_PHONE)
    orchestration = repos.get_orchestration(env.store, events)
    repos.save_orchestration(env.store, orchestration.model_copy(update={"query": "SELECT * FROM purchases"}))
    remote = _ttsync(env, "run", events, "--json", timeout=300)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert remote.stderr == local.stderr == ""
    delivered = json.loads(remote.stdout)["counts"]["deliver"]
    assert delivered["sent"] == planned["planned"]
    assert (delivered["rows"], delivered["rejected"]) == (planned["rows"], planned["rejected"])
    assert delivered["rejected"]  # the sample has bad emails: rejects compared too
    assert len(env.emulator.admin.events(env.emulator.seed.event_set_id)) == planned["planned"]

    # The one child here that starts a JVM (local[1]): its stderr stays quiet too; the ledger marks every
    # event on the executors, so nothing is sent again.
    _configure(env, source | {"master": "local[1]"}, NO_PHONE)
    repos.save_orchestration(env.store, orchestration.model_copy(update={"query": "SELECT * FROM purchases"}))
    again = _ttsync(env, "run", events, "--json", timeout=400)  # minutes allowed on a loaded 2-core machine
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stderr == ""
    repeated = json.loads(again.stdout)["counts"]["deliver"]
    assert (repeated["sent"], repeated["duplicate_skipped"]) == (0, planned["planned"])
    assert repeated["rejected"] == planned["rejected"]
    assert len(env.emulator.admin.events(env.emulator.seed.event_set_id)) == planned["planned"]
