"""The events ledger: a real SQLite file, reopened and shared between connections."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ttsync.app.queries import ledger_totals
from ttsync.events import ledger as ledger_module
from ttsync.events.ledger import LEDGER_FILE, Ledger, event_keys, ledger_namespace
from ttsync.events.outcomes import scrub_message

# The format-1 ledger as the release before format 2 wrote it (its schema and insert, verbatim).
_FORMAT_1_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    event_set_id TEXT NOT NULL,
    event TEXT NOT NULL,
    event_id TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    run_id TEXT,
    PRIMARY KEY (event_set_id, event_id, event)
) WITHOUT ROWID
"""


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
        columns = {
            table: [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
            for table in ("accepted", "batches", "key_index")
        }
        stored = con.execute("SELECT keys_json FROM batches").fetchall()
    finally:
        con.close()
    assert columns == {
        "accepted": ["event_set_id", "event", "event_id", "accepted_at", "run_id"],
        "batches": ["seq", "event_set_id", "accepted_at", "run_id", "n", "key_blob", "keys_json"],
        "key_index": ["key", "seq"],
    }
    assert stored == [('[["Purchase","1"]]',)]


def test_format_1_ledgers_are_still_honoured(tmp_path: Path) -> None:
    # An event the previous release recorded must be skipped after the upgrade, and still counted.
    (tmp_path / LEDGER_FILE).parent.mkdir(parents=True)
    con = sqlite3.connect(tmp_path / LEDGER_FILE)
    con.execute(_FORMAT_1_SCHEMA)
    con.executemany(
        "INSERT OR IGNORE INTO accepted (event_set_id, event, event_id, accepted_at, run_id) "
        "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ? FROM json_each(?)",
        [("es1", 1_700_000_000, "old-run", '[["Purchase","old-1"],["Purchase","old-2"]]')],
    )
    con.commit()
    con.close()
    with Ledger.open(tmp_path) as ledger:
        ledger.record("es1", [("Purchase", "new-1")])
        keys = [("Purchase", "old-1"), ("Purchase", "old-2"), ("Purchase", "new-1"), ("Purchase", "new-2")]
        assert ledger.accepted("es1", keys) == set(keys[:3])
        assert ledger.accepted("es2", keys) == set()
        assert ledger.count("es1") == 3
        assert sorted(key for part in ledger.keys("es1") for key in part) == sorted(keys[:3])
    assert ledger_totals(tmp_path) == {"es1": 3}


def test_indexed_and_waiting_batches_are_both_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # index_after=3: the first lookups index the batches, later batches wait; every key is found either way.
    monkeypatch.setattr(ledger_module, "_INDEX_SLICE", 3)  # a bulk of several slices
    with Ledger.open(tmp_path, index_after=3) as ledger:
        for start in range(0, 8, 2):
            ledger.record("es1", [("Purchase", str(i)) for i in range(start, start + 2)])
            wanted = [("Purchase", str(i)) for i in range(10)]
            assert ledger.accepted("es1", wanted) == set(wanted[: start + 2])
        ledger.record("es1", [("Purchase", "0")])  # recorded twice: counted once
        assert ledger.count("es1") == 8
    con = sqlite3.connect(tmp_path / LEDGER_FILE)
    indexed = con.execute("SELECT count(DISTINCT key) FROM key_index").fetchone()[0]
    con.close()
    assert indexed == 8  # closing indexed the batches that waited
    assert ledger_totals(tmp_path) == {"es1": 8}


def test_a_64_bit_key_collision_never_drops_a_different_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SHA-256 collisions cannot be produced, so the key function is replaced by one that maps every event to
    # the same key: a key found must then be confirmed by the full (event, event_id) in its batch.
    def one_key(
        namespace: str, events: pa.Array, event_ids: pa.Array, tails: pa.Array | None = None
    ) -> np.ndarray:
        return np.full(len(events), 42, dtype=np.int64)

    monkeypatch.setattr(ledger_module, "event_keys", one_key)
    for index_after in (1, 10**9):  # the colliding key in the index, and in a batch waiting to be indexed
        state = tmp_path / str(index_after)
        with Ledger.open(state, index_after=index_after) as ledger:
            ledger.record("es1", [("Purchase", "a")])
            ledger.record("es1", [("Purchase", "b")])
            keys = [("Purchase", "a"), ("Purchase", "b"), ("Purchase", "c"), ("Contact", "a")]
            assert ledger.accepted("es1", keys) == {("Purchase", "a"), ("Purchase", "b")}
            assert ledger.accepted("es2", keys) == set()


def test_event_keys_are_stable_and_unambiguous() -> None:
    events = pa.array(["Purchase", "Purchase", 'Pur"chase', "Purchase"])
    ids = pa.array(["1", "2", "1", 'x","y'])
    keys = event_keys("es1", events, ids)
    assert keys.dtype == np.int64
    assert len(set(keys.tolist())) == 4
    # Documented: the first 8 bytes (little-endian) of SHA-256 over ["namespace","event","event_id"].
    digest = hashlib.sha256(b'["es1","Purchase","1"]').digest()
    assert int(keys[0]) == int.from_bytes(digest[:8], "little", signed=True)
    assert event_keys("es1#test", events, ids)[0] != keys[0]


def test_ids_needing_json_escapes_round_trip(tmp_path: Path) -> None:
    keys = [("Purchase", 'a"b'), ("Purchase", "c\\d"), ("Purchase", "é\n")]
    with Ledger.open(tmp_path) as ledger:
        ledger.record("es1", keys)
        assert ledger.accepted("es1", [*keys, ("Purchase", "ab")]) == set(keys)
        assert sorted(key for part in ledger.keys("es1") for key in part) == sorted(keys)


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


def test_a_lookup_sees_batches_another_connection_records_and_indexes(tmp_path: Path) -> None:
    # The batches waiting are cached between lookups: later batches, and an index bulk by another
    # connection, must still be seen.
    key = [("Purchase", str(i)) for i in range(4)]
    with Ledger.open(tmp_path, index_after=10**9) as reader:
        writer = Ledger.open(tmp_path, index_after=10**9)
        writer.record("es1", key[:1])
        assert reader.accepted("es1", key) == set(key[:1])
        writer.record("es1", key[1:2])
        assert reader.accepted("es1", key) == set(key[:2])
        writer.close()  # indexes both batches
        with Ledger.open(tmp_path, index_after=10**9) as other:
            other.record("es1", key[2:3])
            assert reader.accepted("es1", key) == set(key[:3])
