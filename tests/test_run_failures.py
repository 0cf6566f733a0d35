"""Failures of a real run are explained: source errors get their own resolutions with the database's message,
in `workflows show`, notifications and webhooks, for audience and events workflows (issue 10, section 3)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audience_env import ORCH, Env
from ttsync.app.runs import build_run, start_run
from ttsync.config.models import Source
from ttsync.notify.webhook import build_payload
from ttsync.store import repos

EVENTS_ORCH = "store-purchases-last-7-days"


def cli(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m ttsync ARGS -w WORKSPACE` in a subprocess with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args, "-w", str(env.workspace.root)],
        env=os.environ | env.environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def set_query(env: Env, query: str, orchestration: str = ORCH) -> None:
    current = repos.get_orchestration(env.store, orchestration)
    repos.save_orchestration(env.store, current.model_copy(update={"query": query}))


def set_source(env: Env, **fields: Any) -> None:
    repos.save_source(env.store, Source(name="warehouse", **fields))


def test_syntax_error_in_a_real_run_is_explained_everywhere(env: Env) -> None:
    set_query(env, "SELEC amperity_id, email FROM Merged_Customers")
    done = cli(env, "run", ORCH)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Source query failed" in done.stdout
    assert "syntax error" in done.stdout
    assert "Unexpected error" not in done.stdout
    assert "ttsync workflows restart" in done.stdout

    workflow = repos.list_workflows(env.store, orchestration=ORCH, limit=1)[0]
    shown = json.loads(cli(env, "workflows", "show", workflow.id, "--json").stdout)
    assert shown["error"]["resolution"] == "source_query_failed"
    assert shown["error"]["task"] == "query"
    assert "syntax error" in shown["error"]["database_message"]
    assert shown["resolution"]["key"] == "source_query_failed"
    assert shown["resolution"]["action"] == "restart"

    notification = repos.list_notifications(env.store)[0]
    assert notification.resolution == "source_query_failed"
    assert "syntax error" in notification.message
    payload = build_payload(notification)
    assert "syntax error" in payload["text"]
    assert f"ttsync workflows restart {workflow.id}" in payload["text"]


@pytest.mark.parametrize(
    ("query", "resolution", "said"),
    [
        ("SELECT amperity_id, emial AS email FROM Merged_Customers", "source_query_failed", "emial"),
        ("SELECT amperity_id, email FROM No_Such_Table", "source_not_found", "No_Such_Table"),
        # The sandbox: a source reads only its own file, so another file is refused (not merely "missing").
            ("SELECT * FROM read_csv('does-not-exist.csv')", "source_query_failed", "file system operations are disabled"),
        ("SELECT amperity_id, CAST(email AS INTEGER) AS email, phone, country, idfa, aaid FROM Merged_Customers",
         "source_query_failed",
         "Conversion Error"),
    ],
)  # fmt: skip
def test_query_failures_of_a_duckdb_source(env: Env, query: str, resolution: str, said: str) -> None:
    set_query(env, query)
    outcome = start_run(build_run(env.workspace, env.store, ORCH))
    assert not outcome.ok
    error = outcome.workflow.error or {}
    assert error["resolution"] == resolution, error
    assert said in error["database_message"]
    assert said in error["message"]
    assert outcome.to_dict()["resolution"]["key"] == resolution


def test_missing_source_file_is_source_not_found(env: Env) -> None:
    set_source(env, kind="csv", path="nowhere/customers.csv", table="Merged_Customers")
    outcome = start_run(build_run(env.workspace, env.store, ORCH))
    error = outcome.workflow.error or {}
    assert error["resolution"] == "source_not_found", error
    assert "nowhere/customers.csv" in error["message"]


def test_sqlite_missing_table_and_bad_column(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE customers (amperity_id TEXT, email TEXT)")
    set_source(env, kind="sqlalchemy", url=f"sqlite:///{db}")
    set_query(env, "SELECT amperity_id, email FROM buyers")
    error = start_run(build_run(env.workspace, env.store, ORCH)).workflow.error or {}
    assert error["resolution"] == "source_not_found", error
    assert "no such table: buyers" in error["database_message"]
    set_query(env, "SELECT amperity_id, emale AS email FROM customers")
    error = start_run(build_run(env.workspace, env.store, ORCH)).workflow.error or {}
    assert error["resolution"] == "source_query_failed", error
    assert "emale" in error["database_message"]


def test_refused_connection_is_source_unreachable(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("TTSYNC_TEST_WAREHOUSE_URL", "postgresql+psycopg://analyst:pw@127.0.0.1:1/warehouse")
    set_source(env, kind="sqlalchemy", url_env="TTSYNC_TEST_WAREHOUSE_URL")
    outcome = start_run(build_run(env.workspace, env.store, ORCH))
    error = outcome.workflow.error or {}
    assert error["resolution"] == "source_unreachable", error
    assert "refused" in error["database_message"].lower() or "connect" in error["database_message"].lower()
    assert "pw" not in error["message"].split("127.0.0.1")[0]  # the password of the URL is never shown
    assert outcome.to_dict()["resolution"]["action"] == "retry"


def test_events_workflow_query_failure(env: Env) -> None:
    set_query(env, "SELECT event, event_id FROM Orders_Nope", orchestration=EVENTS_ORCH)
    outcome = start_run(build_run(env.workspace, env.store, EVENTS_ORCH))
    error = outcome.workflow.error or {}
    assert error["resolution"] == "source_not_found", error
    assert error["task"] == "query"
    assert "Orders_Nope" in error["database_message"]


@pytest.mark.postgres
def test_postgres_login_refused_missing_table_and_syntax(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from pg import missing_reason, postgres_server

    if missing_reason():
        pytest.skip(missing_reason() or "")
    with postgres_server() as url:
        # A user the server does not know: the login is refused (the same resolution as a wrong password).
        user = url.split("//", 1)[1].split("@", 1)[0]
        monkeypatch.setenv("TTSYNC_TEST_WAREHOUSE_URL", url.replace(f"//{user}@", "//nobody_here@"))
        set_source(env, kind="sqlalchemy", url_env="TTSYNC_TEST_WAREHOUSE_URL")
        error = start_run(build_run(env.workspace, env.store, ORCH)).workflow.error or {}
        assert error["resolution"] == "source_unreachable", error
        assert "role" in error["database_message"]

        monkeypatch.setenv("TTSYNC_TEST_WAREHOUSE_URL", url)
        set_query(env, "SELECT amperity_id, email FROM merged_customers")
        error = start_run(build_run(env.workspace, env.store, ORCH)).workflow.error or {}
        assert error["resolution"] == "source_not_found", error
        assert "relation" in error["database_message"]

        set_query(env, "SELECT amperity_id email FROM")
        error = start_run(build_run(env.workspace, env.store, ORCH)).workflow.error or {}
        assert error["resolution"] == "source_query_failed", error
        assert "syntax error" in error["database_message"]
