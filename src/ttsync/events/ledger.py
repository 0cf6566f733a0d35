"""The ledger: offline events TikTok accepted, keyed by (event_set_id, event, event_id).

Storage is one SQLite file in the workspace state folder (`<state>/ledger/events.sqlite`), chosen over
DuckDB and Parquet parts because:
- each confirmed batch is one small transaction that must be durable before the next batch is sent; SQLite's
  WAL commits this in well under a millisecond, with no compaction of part files afterwards;
- two runs of different orchestrations may write at once; SQLite serializes writers with a busy timeout,
  where a DuckDB file is locked by one process;
- the only read is "which of these 1,000 keys are already there?", a primary-key lookup.

The file holds keys and the time they were accepted, never identifiers or values.

Exactly-once reasoning (see docs/events.md, "Ledger and re-runs"): a batch is recorded only after TikTok
confirmed it, and a later run filters every event against the ledger before sending. A crash between
TikTok's confirmation and the ledger commit leaves at most the batches in flight unrecorded; a re-run sends
them again, and TikTok drops the copies because it de-duplicates on (event set, event, event_id) within 48
hours (ref §3.3). Re-running within 48 hours of a crash therefore counts every event once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

LEDGER_FILE: Final = Path("ledger") / "events.sqlite"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS accepted (
    event_set_id TEXT NOT NULL,
    event TEXT NOT NULL,
    event_id TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    run_id TEXT,
    PRIMARY KEY (event_set_id, event_id, event)
) WITHOUT ROWID
"""


def ledger_namespace(event_set_id: str, test_event_code: str | None) -> str:
    """The key space of an event set. Test events (sent with a test event code) are kept apart.

    TikTok does not attribute test events, so recording them under the real event set would wrongly skip the
    same events once they are sent for real.
    """
    return f"{event_set_id}#test" if test_event_code else event_set_id


class Ledger:
    """Accepted offline events of one workspace. Open with `Ledger.open(state_dir)`; close when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, timeout=60.0, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (it is in the OS page cache); only a power
        # loss may lose the last commits, and those batches are then re-sent and de-duplicated by TikTok.
        self._con.execute("PRAGMA synchronous=NORMAL")
        # A delivery records a batch every few milliseconds: keep the key index's hot pages in memory, and
        # checkpoint the WAL less often (each checkpoint syncs the file). 16 MiB, not more: the cache fills as
        # the ledger grows, and a delivery's memory must not grow with the number of events (pages beyond it
        # come from the OS's file cache).
        self._con.execute("PRAGMA cache_size=-16384")
        self._con.execute("PRAGMA wal_autocheckpoint=8192")
        self._con.execute(_SCHEMA)

    @classmethod
    def open(cls, state_dir: Path) -> Ledger:
        """The ledger of the workspace whose state folder is `state_dir`."""
        return cls(state_dir / LEDGER_FILE)

    def close(self) -> None:
        """Close the database connection."""
        self._con.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def accepted(self, namespace: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (event, event_id) keys TikTok already accepted in `namespace`."""
        return self.accepted_json(namespace, json.dumps(keys))

    def accepted_json(self, namespace: str, keys_json: str) -> set[tuple[str, str]]:
        """`accepted` with the keys as one JSON text, `[["event","event_id"],...]` (the bulk path)."""
        # The keys travel as one JSON parameter (SQLite's json_each unpacks them in C): one primary-key
        # lookup per key, without a Python object per bound parameter. CROSS JOIN makes the keys the outer
        # loop (SQLite's planner would otherwise scan the whole namespace once per key).
        rows = self._con.execute(
            "SELECT a.event, a.event_id FROM json_each(?) AS k CROSS JOIN accepted AS a "
            "ON a.event_set_id = ? AND a.event_id = json_extract(k.value, '$[1]') "
            "AND a.event = json_extract(k.value, '$[0]')",
            [keys_json, namespace],
        ).fetchall()
        return set(rows)

    def record(self, namespace: str, keys: Sequence[tuple[str, str]], *, run_id: str | None = None) -> int:
        """Record keys TikTok confirmed, in one transaction. Call only after the confirmation. Returns count."""
        self.record_json(namespace, json.dumps(keys), run_id=run_id)
        return len(keys)

    def record_json(self, namespace: str, keys_json: str, *, run_id: str | None = None) -> None:
        """`record` with the keys as one JSON text, `[["event","event_id"],...]` (one transaction per
        confirmed request, the bulk path)."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            self._con.execute(
                "INSERT OR IGNORE INTO accepted (event_set_id, event, event_id, accepted_at, run_id) "
                "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ? FROM json_each(?)",
                [namespace, int(time.time()), run_id, keys_json],
            )
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def keys(self, namespace: str, batch_rows: int = 100_000) -> Iterator[list[tuple[str, str]]]:
        """Every (event, event_id) accepted in `namespace`, `batch_rows` at a time (Spark's anti-join reads
        them from a file; the driver never holds them all)."""
        cursor = self._con.execute("SELECT event, event_id FROM accepted WHERE event_set_id = ?", [namespace])
        while rows := cursor.fetchmany(batch_rows):
            yield rows

    def count(self, namespace: str | None = None) -> int:
        """Number of accepted events (in one namespace, or in all)."""
        if namespace is None:
            row = self._con.execute("SELECT count(*) FROM accepted").fetchone()
        else:
            row = self._con.execute(
                "SELECT count(*) FROM accepted WHERE event_set_id = ?", [namespace]
            ).fetchone()
        return int(row[0])
