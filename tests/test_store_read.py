"""Reads of the API do not queue behind writers (SQLite `Store.read`), and migration 7 gives an older store the
workflow indexes its pages use and the orchestrations' `catch_up`; a zombie holds no lease."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from ttsync.store import Store, repos, schema
from ttsync.store.db import sqlite_url
from ttsync.store.leases import pid_alive


def test_a_reader_neither_waits_for_nor_blocks_a_writer(tmp_path: Path) -> None:
    store = Store.open(sqlite_url(tmp_path / "ttsync.db"))
    try:
        repos.create_workflow(store, "orch", "audience", ["query"])
        release = threading.Event()
        holding = threading.Event()

        def writer() -> None:
            with store.engine.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock until released
                conn.execute(sa.update(schema.workflows).values(state="running"))
                holding.set()
                release.wait(30)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert holding.wait(10)
            began = time.monotonic()
            with store.read() as conn:  # would wait out the busy timeout (30 s) if it took the lock too
                states = conn.execute(sa.select(schema.workflows.c.state)).scalars().all()
            waited = time.monotonic() - began
            assert states == ["pending"]  # the snapshot before the writer commits
            assert waited < 5, waited
        finally:
            release.set()
            thread.join()
        with store.read() as conn:
            assert conn.execute(sa.select(schema.workflows.c.state)).scalars().all() == ["running"]
    finally:
        store.close()


def test_migration_7_adds_the_workflow_indexes_and_catch_up_to_an_older_store(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ttsync.db")
    store = Store.open(url)
    # As a store made before migration 7 was, by a ttsync that already had migration 8: 7 is still applied.
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_workflows_created_at_id"))
        conn.execute(sa.text("DROP INDEX ix_workflows_state"))
        conn.execute(sa.text("ALTER TABLE orchestrations DROP COLUMN catch_up"))
        conn.execute(sa.delete(schema.schema_version).where(schema.schema_version.c.version == 7))
    store.close()
    store = Store.open(url)
    try:
        with store.read() as conn:
            names = {index["name"] for index in sa.inspect(conn).get_indexes("workflows")}
            columns = {column["name"] for column in sa.inspect(conn).get_columns("orchestrations")}
            plan = conn.execute(
                sa.text("EXPLAIN QUERY PLAN SELECT * FROM workflows ORDER BY created_at DESC, id LIMIT 50")
            ).all()
        assert {"ix_workflows_created_at_id", "ix_workflows_state"} <= names
        assert "catch_up" in columns
        assert "USE TEMP B-TREE" not in " ".join(str(row) for row in plan)  # no sort of every workflow
    finally:
        store.close()


def test_a_zombie_process_does_not_hold_a_lease_or_a_queued_run() -> None:
    # A worker killed with its server is adopted by the container's init, which may reap it late: until then
    # kill(pid, 0) succeeds, and the dead worker's run would block its orchestration's schedule.
    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        os.kill(child.pid, 0)  # the kernel still knows it
        assert not pid_alive(child.pid)
        assert pid_alive(os.getpid())
    finally:
        child.wait()
    assert not pid_alive(child.pid)
