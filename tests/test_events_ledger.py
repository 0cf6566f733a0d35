"""The events ledger: a real SQLite file, reopened and shared between connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ttsync.events.ledger import LEDGER_FILE, Ledger, ledger_namespace
from ttsync.events.outcomes import scrub_message


def test_record_then_lookup_survives_reopen(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.accepted("es1", [("Purchase", "1")]) == set()
        assert ledger.record("es1", [("Purchase", "1"), ("Purchase", "2")], run_id="run-a") == 2
    with Ledger.open(tmp_path) as ledger:
        keys = [("Purchase", "1"), ("Purchase", "2"), ("Purchase", "3"), ("Contact", "1")]
        assert ledger.accepted("es1", keys) == {("Purchase", "1"), ("Purchase", "2")}
        assert ledger.accepted("es2", keys) == set()
        assert ledger.count("es1") == 2
        assert ledger.count() == 2


def test_recording_twice_is_harmless(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record("es1", [("Purchase", "1")])
        ledger.record("es1", [("Purchase", "1")])
        assert ledger.count("es1") == 1


def test_large_lookups_are_chunked(tmp_path: Path) -> None:
    keys = [("Purchase", str(i)) for i in range(2_500)]
    with Ledger.open(tmp_path) as ledger:
        ledger.record("es1", keys[::2])
        assert ledger.accepted("es1", keys) == set(keys[::2])


def test_test_events_live_in_their_own_namespace(tmp_path: Path) -> None:
    assert ledger_namespace("es1", None) == "es1"
    assert ledger_namespace("es1", "TEST123") == "es1#test"
    with Ledger.open(tmp_path) as ledger:
        ledger.record(ledger_namespace("es1", "TEST123"), [("Purchase", "1")])
        assert ledger.accepted("es1", [("Purchase", "1")]) == set()


def test_two_connections_see_each_others_commits(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as first, Ledger.open(tmp_path) as second:
        first.record("es1", [("Purchase", "1")])
        assert second.accepted("es1", [("Purchase", "1")]) == {("Purchase", "1")}


def test_the_file_holds_keys_only(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record("es1", [("Purchase", "1")], run_id="r")
    con = sqlite3.connect(tmp_path / LEDGER_FILE)
    try:
        columns = [row[1] for row in con.execute("PRAGMA table_info(accepted)")]
    finally:
        con.close()
    assert columns == ["event_set_id", "event", "event_id", "accepted_at", "run_id"]


def test_tiktok_messages_lose_anything_that_could_be_a_value() -> None:
    message = (
        "data.3.user.email.0: 'alice@example.com' is not a+b@c.org; hash "
        + "ab" * 32
        + " phone +1 (206) 555-0100 must be SHA-256 hashed (64 lowercase hex characters)"
    )
    scrubbed = scrub_message(message)
    assert scrubbed.startswith("data.3.user.email.0: <value>")
    for leaked in ("alice", "a+b@c.org", "ab" * 32, "555-0100"):
        assert leaked not in scrubbed
    assert "64 lowercase hex characters" in scrubbed
