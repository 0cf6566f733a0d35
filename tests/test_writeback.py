"""Write-back (docs/writeback.md): the four tables in the sample warehouse after real runs against the
emulator, compared with the workflow records and the emulator's state; re-runs, retries, failures, a schema
migration from the previous version, and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from audience_env import ORCH, Env
from ttsync.app.runs import build_run, continue_run, start_run
from ttsync.config.writeback import WritebackConfig
from ttsync.store import repos
from ttsync.writeback.schema import SCHEMA_VERSION
from ttsync.writeback.stored import save_writeback
from ttsync.writeback.target import DuckDBTarget, SQLAlchemyTarget
from ttsync.writeback.writer import current_version, migrate

TABLES = ("ttsync_runs", "ttsync_audience_syncs", "ttsync_row_outcomes", "ttsync_event_outcomes")


def _on(env: Env, **settings: object) -> None:
    save_writeback(env.workspace.state_dir, WritebackConfig.model_validate(settings))


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_audience_run_writes_four_tables_matching_records_and_emulator(env: Env) -> None:
    _on(env)
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    workflow = outcome.workflow
    assert [t.name for t in workflow.tasks][-1] == "writeback"
    wb = next(t for t in workflow.tasks if t.name == "writeback")
    assert wb.counts["written"] is True
    warehouse = env.workspace.sample_warehouse
    tables = {
        r[0]
        for r in _query(
            warehouse, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ttsync'"
        )
    }
    assert set(TABLES) <= tables

    (run,) = _query(
        warehouse, "SELECT workflow_id, orchestration, status, rows_read, task_counts FROM ttsync.ttsync_runs"
    )
    prepare = next(t for t in workflow.tasks if t.name == "prepare")
    assert run[:4] == (workflow.id, ORCH, workflow.state, prepare.counts["rows_read"])
    assert json.loads(str(run[4]))["upload"]["state"] == "succeeded"

    plan = next(t for t in workflow.tasks if t.name == "plan").counts
    (sync,) = _query(
        warehouse,
        "SELECT audience_id, adds, removes, deferred, size_after, tiktok_size, rejected FROM ttsync.ttsync_audience_syncs",
    )
    members = env.members()
    assert sync[0] == env.audience_id()
    assert (sync[1], sync[2], sync[3]) == (plan["add_ids"], plan["remove_ids"], 0)
    assert sync[4] == len(members)  # the emulator holds exactly the identifiers the run says are in it
    assert sync[6] == prepare.counts["rejected_values"]

    # Per row: every identifier the emulator holds is `sent` by some row; rejects carry their reason codes.
    by_status = dict(_query(warehouse, "SELECT status, count(*) FROM ttsync.ttsync_row_outcomes GROUP BY 1"))
    assert by_status["rejected"] == prepare.counts["rejected_values"]
    assert set(by_status) <= {"sent", "rejected"}  # a first run sends everything
    sent_types = dict(_query(
        warehouse,
        "SELECT identifier_type, count(DISTINCT row_key) FROM ttsync.ttsync_row_outcomes WHERE status = 'sent' GROUP BY 1",
    ))  # fmt: skip
    assert sent_types["EMAIL"] > 0
    assert _query(
        warehouse,
        "SELECT count(*) FROM ttsync.ttsync_row_outcomes WHERE status='rejected' AND reason IS NULL",
    ) == [(0,)]


def test_rerun_and_retry_replace_rows_never_duplicate(env: Env) -> None:
    _on(env)
    first = env.run().workflow
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:  # a customer leaves the segment
        con.execute("UPDATE Merged_Customers SET lifetime_value = 0 WHERE amperity_id = "
                    "(SELECT min(amperity_id) FROM Merged_Customers WHERE lifetime_value >= 500 AND email IS NOT NULL)")  # fmt: skip
    second = env.run().workflow
    warehouse = env.workspace.sample_warehouse
    runs = _query(warehouse, "SELECT workflow_id FROM ttsync.ttsync_runs ORDER BY created_at")
    assert runs == [(first.id,), (second.id,)]
    statuses = dict(_query(
        warehouse,
        f"SELECT status, count(*) FROM ttsync.ttsync_row_outcomes WHERE workflow_id = '{second.id}' GROUP BY 1",
    ))  # fmt: skip
    assert statuses.get("in_audience", 0) > 0
    assert statuses.get("sent", 0) == 0
    (removes,) = _query(
        warehouse, f"SELECT removes FROM ttsync.ttsync_audience_syncs WHERE workflow_id = '{second.id}'"
    )
    assert removes[0] >= 1
    before = _query(warehouse, "SELECT count(*) FROM ttsync.ttsync_row_outcomes")
    # Writing the same workflow again (a restart runs every task, write-back last) replaces its rows.
    again = continue_run(build_run(env.workspace, env.store, ORCH), second.id, "restart")
    assert again.ok
    assert _query(warehouse, "SELECT count(*) FROM ttsync.ttsync_row_outcomes") == before
    assert len(_query(warehouse, "SELECT * FROM ttsync.ttsync_runs")) == 2


def test_writeback_failure_never_fails_the_sync_and_retry_writes_it(env: Env) -> None:
    warehouse = env.workspace.sample_warehouse
    _on(env)
    holder = duckdb.connect(str(warehouse))  # another process would hold the lock; here: a read-write handle
    holder.execute("CREATE SCHEMA ttsync")
    holder.execute("CREATE TABLE ttsync.ttsync_runs (workflow_id INTEGER)")  # an incompatible table
    holder.execute(
        "CREATE TABLE ttsync.ttsync_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ, description TEXT)"
    )
    holder.execute("INSERT INTO ttsync.ttsync_schema_migrations VALUES (99, now(), 'from the future')")
    holder.close()
    outcome = env.run()
    assert outcome.ok  # the audience was synced
    assert outcome.workflow.state == "succeeded_with_warnings"
    wb = next(t for t in outcome.workflow.tasks if t.name == "writeback")
    assert wb.counts["written"] is False
    (warning,) = wb.counts["warnings"]
    assert warning["resolution"] == "writeback_failed"
    assert "ttsync workflows retry" in warning["message"]
    assert env.members()  # TikTok got the audience regardless

    with duckdb.connect(str(warehouse)) as con:
        con.execute("DROP SCHEMA ttsync CASCADE")
    retried = continue_run(build_run(env.workspace, env.store, ORCH), outcome.workflow.id, "retry")
    assert retried.ok
    assert retried.workflow.state == "succeeded"
    assert _query(warehouse, "SELECT workflow_id, status FROM ttsync.ttsync_runs") == [
        (outcome.workflow.id, "succeeded")
    ]


def test_failed_workflow_is_written_then_replaced_by_its_retry(env: Env) -> None:
    _on(env)
    env.emulator.admin.set_faults(rate=1.0, codes=[40000], paths=["segment/mapping/"])
    failed = env.run()
    assert not failed.ok
    warehouse = env.workspace.sample_warehouse
    rows = _query(warehouse, "SELECT status, resolution, failed_task FROM ttsync.ttsync_runs")
    assert rows == [("failed", (failed.workflow.error or {})["resolution"], "upload")]
    # Nothing was confirmed: every identifier is deferred, and the audience row says how many.
    statuses = dict(_query(warehouse, "SELECT status, count(*) FROM ttsync.ttsync_row_outcomes GROUP BY 1"))
    assert "sent" not in statuses
    assert statuses["deferred"] > 0
    plan = next(t for t in failed.workflow.tasks if t.name == "plan").counts
    assert _query(warehouse, "SELECT deferred FROM ttsync.ttsync_audience_syncs") == [(plan["add_ids"],)]

    env.emulator.admin.clear_faults()
    retried = continue_run(build_run(env.workspace, env.store, ORCH), failed.workflow.id, "retry")
    assert retried.ok
    assert _query(warehouse, "SELECT status, resolution FROM ttsync.ttsync_runs") == [("succeeded", None)]
    statuses = dict(_query(warehouse, "SELECT status, count(*) FROM ttsync.ttsync_row_outcomes GROUP BY 1"))
    assert "deferred" not in statuses
    assert statuses["sent"] > 0


def test_override_turns_writeback_off_and_tables_subset(env: Env) -> None:
    _on(env, orchestrations={ORCH: {"enabled": False}})
    outcome = env.run()
    assert "writeback" not in [t.name for t in outcome.workflow.tasks]
    _on(env, tables=["ttsync_runs"])
    env.run()
    counts = _query(
        env.workspace.sample_warehouse,
        "SELECT (SELECT count(*) FROM ttsync.ttsync_runs), (SELECT count(*) FROM ttsync.ttsync_row_outcomes)",
    )
    assert counts == [(1, 0)]


def test_migrates_from_previous_version_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    conn = DuckDBTarget(path, "ttsync")
    assert migrate(conn, to_version=SCHEMA_VERSION - 1) == 0
    conn.execute(
        "INSERT INTO \"ttsync\".ttsync_runs (workflow_id, orchestration, kind, status) VALUES ('w1', 'o', 'audience', 'succeeded')"
    )
    assert current_version(conn) == SCHEMA_VERSION - 1
    assert migrate(conn) == SCHEMA_VERSION - 1
    assert current_version(conn) == SCHEMA_VERSION
    assert conn.execute('SELECT workflow_id, written_at FROM "ttsync".ttsync_runs') == [("w1", None)]
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    conn.close()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from pg import missing_reason, postgres_server

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


def test_postgres_target_migration_and_runs(env: Env, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    conn = SQLAlchemyTarget(pg_url, "ttsync_prev")
    migrate(conn, to_version=SCHEMA_VERSION - 1)
    conn.close()
    monkeypatch.setenv("WRITEBACK_URL", pg_url)
    _on(env, url_env="WRITEBACK_URL", schema="ttsync_prev")
    first = env.run().workflow
    again = continue_run(build_run(env.workspace, env.store, ORCH), first.id, "restart")
    assert again.ok
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        version = con.execute(
            sa.text("SELECT max(version) FROM ttsync_prev.ttsync_schema_migrations")
        ).scalar()
        runs = con.execute(sa.text("SELECT workflow_id, status FROM ttsync_prev.ttsync_runs")).all()
        outcomes = con.execute(sa.text("SELECT count(*) FROM ttsync_prev.ttsync_row_outcomes")).scalar()
        sent = con.execute(
            sa.text(
                "SELECT count(DISTINCT row_key) FROM ttsync_prev.ttsync_row_outcomes WHERE status IN ('sent', 'in_audience')"
            )
        ).scalar()
    engine.dispose()
    assert version == SCHEMA_VERSION
    assert runs == [(first.id, "succeeded")]
    plan = next(t for t in again.workflow.tasks if t.name == "plan").counts
    assert outcomes
    assert sent == plan["current_people"]


def test_events_run_writes_event_outcomes_matching_the_emulator(env: Env) -> None:
    _on(env)
    events_orch = "store-purchases-last-7-days"
    first = start_run(build_run(env.workspace, env.store, events_orch))
    assert first.ok, first.workflow.error
    second = start_run(build_run(env.workspace, env.store, events_orch))  # everything already accepted
    assert second.ok
    received = env.emulator.admin.events(env.emulator.seed.event_set_id)
    warehouse = env.workspace.sample_warehouse
    accepted = _query(
        warehouse,
        f"SELECT DISTINCT event, event_id FROM ttsync.ttsync_event_outcomes "
        f"WHERE workflow_id = '{first.workflow.id}' AND status = 'accepted'",
    )
    assert sorted(accepted) == sorted((e["event"], e["event_id"]) for e in received)
    deliver = first.workflow.counts["deliver"]
    by_status = dict(_query(warehouse, f"SELECT status, count(*) FROM ttsync.ttsync_event_outcomes WHERE workflow_id = '{second.workflow.id}' GROUP BY 1"))  # fmt: skip
    assert set(by_status) <= {"duplicate", "rejected"}
    assert sum(by_status.values()) == deliver["rows"]
    rejected_without_reason = _query(
        warehouse,
        "SELECT count(*) FROM ttsync.ttsync_event_outcomes WHERE status = 'rejected' AND reason IS NULL",
    )
    assert rejected_without_reason == [(0,)]
    runs = _query(warehouse, "SELECT workflow_id, kind FROM ttsync.ttsync_runs ORDER BY created_at")
    assert runs == [(first.workflow.id, "offline_events"), (second.workflow.id, "offline_events")]
    assert _query(warehouse, "SELECT count(*) FROM ttsync.ttsync_audience_syncs") == [(0,)]


def test_target_outside_the_workspace_is_refused_without_failing_the_sync(env: Env, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "results.duckdb"
    _on(env, path=str(outside))
    outcome = env.run()
    assert outcome.ok
    assert outcome.workflow.state == "succeeded_with_warnings"
    (warning,) = next(t for t in outcome.workflow.tasks if t.name == "writeback").counts["warnings"]
    assert "outside the workspace folder" in warning["message"]
    assert "TTSYNC_SOURCE_DIRS" in warning["message"]
    assert not outside.exists()
    notes = repos.list_notifications(env.store)
    assert any(n.resolution == "writeback_failed" for n in notes)


def test_a_new_run_marks_the_failed_workflow_it_superseded(env: Env) -> None:
    _on(env)
    env.emulator.admin.set_faults(rate=1.0, codes=[40000], paths=["segment/mapping/"])
    failed = env.run()
    assert not failed.ok
    env.emulator.admin.clear_faults()
    fresh = env.run()  # a new run, not a retry: it supersedes the failed workflow
    assert fresh.ok
    assert repos.get_workflow(env.store, failed.workflow.id).state == "superseded"
    rows = _query(
        env.workspace.sample_warehouse,
        "SELECT workflow_id, status FROM ttsync.ttsync_runs ORDER BY created_at",
    )
    assert rows == [(failed.workflow.id, "superseded"), (fresh.workflow.id, "succeeded")]


def test_postgres_concurrent_first_writes_migrate_once(pg_url: str) -> None:
    import threading

    import pyarrow as pa
    import sqlalchemy as sa

    from ttsync.config.writeback import ALL_TABLES, WritebackTarget
    from ttsync.writeback.writer import WorkflowRows, write_rows

    target = WritebackTarget("sqlalchemy", pg_url, "ttsync_race", ALL_TABLES, "test")
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=30)

    def write(workflow_id: str) -> None:
        conn = SQLAlchemyTarget(pg_url, "ttsync_race")
        try:
            start.wait()
            runs = pa.table(
                {
                    "workflow_id": [workflow_id],
                    "orchestration": ["o"],
                    "kind": ["audience"],
                    "status": ["succeeded"],
                }
            )
            write_rows(conn, target, WorkflowRows(workflow_id, {"ttsync_runs": runs}))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(f"w{i}",), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        versions = (
            con.execute(sa.text("SELECT version FROM ttsync_race.ttsync_schema_migrations ORDER BY 1"))
            .scalars()
            .all()
        )
        runs = (
            con.execute(sa.text("SELECT workflow_id FROM ttsync_race.ttsync_runs ORDER BY 1")).scalars().all()
        )
    engine.dispose()
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert runs == ["w0", "w1", "w2", "w3"]
