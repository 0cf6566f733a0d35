"""Error text is redacted of identifiers wherever it is printed, stored, posted or logged (real DuckDB, Arrow
and SQLAlchemy exceptions; a real store; a real HTTP receiver for webhooks)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from ttsync.errors import ConfigError, ResolvableError
from ttsync.notify.webhook import build_payload
from ttsync.redact import RedactPIIFilter, install_log_redaction, redact_error, redact_text
from ttsync.store import Store, repos
from ttsync.store.db import sqlite_url
from ttsync.workflows.engine import TaskContext, TaskSpec, WorkflowFailedError, run_workflow

EMAIL = "ann.lee@example.com"
PHONE = "+1 (415) 555-0100"
MAID = "6D92078A-8246-4BA4-AE5B-76104861E7DC"


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        (f'Could not parse string "{EMAIL}" according to format specifier', EMAIL),
        (f"Malformed JSON at byte 0 of input: unexpected character.  Input: {EMAIL}", EMAIL),
        (f"Input: {PHONE} is not a number", "555"),
        ("national 07911 123456 and digits 4155550100", "123456"),
        (f"idfa {MAID}", "8246"),
        ("md5 " + "ab" * 16, "abab"),
        ("partial @example.com domain", "@example.com"),
    ],
)
def test_identifier_looking_text_is_removed(text: str, gone: str) -> None:
    redacted = redact_text(text)
    assert gone not in redacted
    assert "<redacted>" in redacted


def test_ttsync_messages_keep_their_ids_and_urls() -> None:
    message = "offline event set 7000000000000000001 does not exist for advertiser 7000000000000000002"
    assert redact_error(ConfigError(message)) == message
    assert redact_error(ConfigError(f"row {EMAIL} is bad")) == "row <redacted> is bad"
    assert redact_text("postgresql+psycopg://analyst@db.internal/warehouse") == (
        "postgresql+psycopg://analyst@db.internal/warehouse"
    )


def _raise(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def test_foreign_exceptions_of_every_kind_are_redacted(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT '{EMAIL}' AS email, '{PHONE}' AS phone, 'Jane Roe' AS name")
    engine = sa.create_engine(sqlite_url(tmp_path / "x.db"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (email TEXT UNIQUE)")
        conn.exec_driver_sql(f"INSERT INTO t VALUES ('{EMAIL}')")

    def duplicate_row() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO t VALUES ('{EMAIL}')")

    errors = [
        _raise(lambda: con.execute("SELECT email::JSON FROM t").fetchall()),
        _raise(lambda: con.execute("SELECT strptime(email, '%Y') FROM t").fetchall()),
        _raise(lambda: con.execute("SELECT CAST(phone AS INTEGER) FROM t").fetchall()),
        _raise(lambda: con.execute("SELECT CAST(name AS DATE) FROM t").fetchall()),
        _raise(lambda: pc.cast(pa.array([EMAIL]), pa.float64())),
        _raise(lambda: pc.cast(pa.array([PHONE]), pa.int64())),
        _raise(duplicate_row),
        _raise(lambda: int(PHONE)),
    ]
    engine.dispose()
    assert {type(e).__module__.split(".")[0] for e in errors} >= {
        "_duckdb",
        "pyarrow",
        "sqlalchemy",
        "builtins",
    }
    for exc in errors:
        raw = str(exc)
        assert EMAIL in raw or "555" in raw or "Jane" in raw  # the driver did quote the value
        safe = redact_error(exc)
        assert EMAIL not in safe
        assert "555" not in safe
        assert "Jane" not in safe
    # SQL errors keep the quoted SQL text that helps fix the query.
    binder = _raise(lambda: con.execute('SELECT "emial" FROM t').fetchall())
    assert "emial" in redact_error(binder)


def test_a_failed_task_stores_and_notifies_redacted_text(tmp_path: Path) -> None:
    store = Store.open(sqlite_url(tmp_path / "ttsync.db"))
    try:
        workflow = repos.create_workflow(store, "orch", "audience", ["one"])

        async def fail(_ctx: TaskContext) -> dict[str, object]:
            raise ResolvableError(f"TikTok rejected {EMAIL}", resolution_key="invalid_request")

        with pytest.raises(WorkflowFailedError):
            asyncio.run(run_workflow(store, workflow.id, [TaskSpec("one", fail)]))
        stored = repos.get_workflow(store, workflow.id)
        assert stored.error is not None
        assert EMAIL not in repr(stored.error)
        assert EMAIL not in repr(stored.tasks[0].error)
        assert "<redacted>" in stored.error["message"]
        notes = repos.list_notifications(store)
        assert notes
        assert all(EMAIL not in n.message + n.title for n in notes)
        # A notification written by any other path is redacted too, and so is its webhook payload.
        note = repos.add_notification(
            store, workflow_id=workflow.id, severity="warning", title=f"about {EMAIL}", message=f"see {EMAIL}"
        )
        assert EMAIL not in note.title + note.message
        assert EMAIL not in repr(build_payload(note.model_copy(update={"message": f"raw {EMAIL}"})))
    finally:
        store.close()


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ttsync.test_redact")
    install_log_redaction("ttsync.test_redact")
    assert sum(isinstance(f, RedactPIIFilter) for f in logger.filters) == 1
    install_log_redaction("ttsync.test_redact")  # idempotent
    assert sum(isinstance(f, RedactPIIFilter) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="ttsync.test_redact"):
        logger.info("value %s failed", EMAIL)
        logger.info(f"row {EMAIL} failed")
        try:
            int(PHONE)
        except ValueError:
            logger.exception("parse failed")
    assert EMAIL not in caplog.text
    assert "555" not in caplog.text
    assert "parse failed: ValueError" in caplog.text
