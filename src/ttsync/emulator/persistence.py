"""``--state FILE``: the emulator's state in a SQLite file, written incrementally and debounced.

Metadata (apps, tokens, audiences without members, ...) is one small JSON document rewritten on each flush.
Member hashes, uploads, received events and dedupe keys are large, so only their changes are written, in
the order they happened, each flush in one transaction (atomic: a crash leaves the previous flush intact).
Writes run on one background thread so request handling is not blocked; the event loop only swaps lists.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ttsync.emulator.clock import Clock
from ttsync.emulator.model import EventBatch, State, Upload

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    audience_id TEXT NOT NULL, schema TEXT NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (audience_id, schema, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upload_members (file_path TEXT NOT NULL, schema TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, source_id TEXT NOT NULL, test INTEGER NOT NULL, info TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dedupe (key BLOB PRIMARY KEY, t REAL NOT NULL) WITHOUT ROWID;
"""

Op = tuple[Any, ...]


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (it holds the app secret and every token), or tighten it.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's permissions."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)


class Persistence:
    """Journal implementation backed by SQLite."""

    def __init__(self, path: str | Path, debounce: float = 0.5) -> None:
        self.path = Path(path)
        self.debounce = debounce
        _private_file(self.path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-state")
        self._lock = threading.Lock()
        self._ops: list[Op] = []
        self._meta_dirty = False
        self._scheduled = False
        self._state: State | None = None
        self._last: Future[None] | None = None

    # -- loading -------------------------------------------------------------------------------------
    def load(self) -> State | None:
        """The saved state, or None when the file holds none yet."""
        row = self._db.execute("SELECT v FROM meta WHERE k = 'state'").fetchone()
        if row is None:
            return None
        state = State(clock=Clock())
        state.load_meta(json.loads(row[0]))
        for audience_id, schema, digest in self._db.execute("SELECT audience_id, schema, hash FROM members"):
            aud = state.audiences.get(audience_id)
            if aud is not None:
                aud.members.setdefault(schema, {})[bytes(digest)] = None
        for file_path, schema, data in self._db.execute("SELECT file_path, schema, data FROM upload_members"):
            upload = state.uploads.get(file_path)
            if upload is not None:
                blob = bytes(data)
                size = 16 if schema.endswith("MD5") else 32
                upload.members.setdefault(schema, set()).update(
                    blob[i : i + size] for i in range(0, len(blob), size)
                )
        for source_id, test, info, body in self._db.execute(
            "SELECT source_id, test, info, body FROM events ORDER BY id"
        ):
            batch = EventBatch(source_id=source_id, body=bytes(body), **json.loads(info))
            target = state.test_event_batches if test else state.event_batches
            target.setdefault(source_id, []).append(batch)
        state.dedupe = {bytes(k): t for k, t in self._db.execute("SELECT key, t FROM dedupe")}
        return state

    # -- attaching -----------------------------------------------------------------------------------
    def attach(self, state: State, *, rewrite: bool = False) -> None:
        """Start journaling ``state``. ``rewrite`` replaces the file's content with this state."""
        with self._lock:
            self._ops.clear()
        self._state = state
        state.journal = self
        if rewrite or self._db.execute("SELECT 1 FROM meta WHERE k = 'state'").fetchone() is None:
            self._enqueue(("rewrite",))
            for aud in state.audiences.values():
                for schema, hashes in aud.members.items():
                    self._enqueue(("add", aud.audience_id, schema, list(hashes)))
            for upload in state.uploads.values():
                self.upload_stored(upload)
            for source, batches in state.event_batches.items():
                for batch in batches:
                    self._enqueue(("event", source, 0, batch))
            self.meta_changed()

    # -- Journal -------------------------------------------------------------------------------------
    def meta_changed(self) -> None:
        self._meta_dirty = True
        self._schedule()

    def members_added(self, audience_id: str, schema: str, hashes: list[bytes]) -> None:
        self._enqueue(("add", audience_id, schema, hashes))

    def members_removed(self, audience_id: str, schema: str, hashes: list[bytes]) -> None:
        self._enqueue(("remove", audience_id, schema, hashes))

    def members_cleared(self, audience_id: str) -> None:
        self._enqueue(("clear", audience_id))

    def upload_stored(self, upload: Upload) -> None:
        self._enqueue(("upload", upload.file_path, {k: b"".join(v) for k, v in upload.members.items()}))

    def events_stored(self, batch: EventBatch) -> None:
        self._enqueue(("event", batch.source_id, 1 if batch.test_event_code else 0, batch))

    def dedupe_keys(self, keys: list[tuple[bytes, float]]) -> None:
        self._enqueue(("dedupe", keys))

    def dedupe_pruned(self, seen_before: float) -> None:
        self._enqueue(("dedupe_prune", seen_before))

    # -- flushing ------------------------------------------------------------------------------------
    def _enqueue(self, op: Op) -> None:
        with self._lock:
            self._ops.append(op)
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # not serving yet (startup): write now
            return
        self._scheduled = True
        loop.call_later(self.debounce, self._kick)

    def _kick(self) -> None:
        self._scheduled = False
        self._last = self._writer.submit(self._write, *self._take())

    def _take(self) -> tuple[list[Op], str | None]:
        with self._lock:
            ops, self._ops = self._ops, []
        meta = None
        if self._meta_dirty and self._state is not None:
            meta = json.dumps(self._state.meta_dict())
            self._meta_dirty = False
        return ops, meta

    def flush(self) -> None:
        """Write everything pending now and wait for it."""
        future = self._writer.submit(self._write, *self._take())
        future.result()

    def close(self) -> None:
        """Flush and close the file."""
        self._scheduled = True  # no more scheduling from late journal calls
        self.flush()
        self._writer.shutdown(wait=True)
        self._db.close()

    def _write(self, ops: list[Op], meta: str | None) -> None:
        if not ops and meta is None:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            for op in ops:
                kind = op[0]
                if kind == "rewrite":
                    for table in ("meta", "members", "upload_members", "events", "dedupe"):
                        db.execute(f"DELETE FROM {table}")
                elif kind == "add":
                    db.executemany(
                        "INSERT OR IGNORE INTO members VALUES (?, ?, ?)", ((op[1], op[2], h) for h in op[3])
                    )
                elif kind == "remove":
                    db.executemany(
                        "DELETE FROM members WHERE audience_id = ? AND schema = ? AND hash = ?",
                        ((op[1], op[2], h) for h in op[3]),
                    )
                elif kind == "clear":
                    db.execute("DELETE FROM members WHERE audience_id = ?", (op[1],))
                elif kind == "upload":
                    db.executemany(
                        "INSERT INTO upload_members VALUES (?, ?, ?)",
                        ((op[1], k, v) for k, v in op[2].items()),
                    )
                elif kind == "event":
                    batch: EventBatch = op[3]
                    info = {
                        "event_source": batch.event_source,
                        "received_at": batch.received_at,
                        "accepted": batch.accepted,
                        "test_event_code": batch.test_event_code,
                    }
                    db.execute(
                        "INSERT INTO events (source_id, test, info, body) VALUES (?, ?, ?, ?)",
                        (op[1], op[2], json.dumps(info), batch.body),
                    )
                elif kind == "dedupe":
                    db.executemany("INSERT OR REPLACE INTO dedupe VALUES (?, ?)", op[1])
                elif kind == "dedupe_prune":
                    db.execute("DELETE FROM dedupe WHERE t <= ?", (op[1],))
            if meta is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('state', ?)", (meta,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
