"""Snapshots: the set of hashed identifiers last confirmed delivered to one audience.

A snapshot is one Parquet file with two columns, `id_schema` and `hash` (hashes only: no raw PII ever lands
here). It is replaced atomically (write a temporary file, fsync, rename) and only after TikTok confirmed every
batch of a delivery, so a crash at any point leaves the previous snapshot in place and a re-run converges.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

SNAPSHOT_COLUMNS = ("id_schema", "hash")


def snapshot_path(state_dir: Path, destination: str, audience_id: str) -> Path:
    """Where the snapshot of one audience of one destination lives inside a workspace state folder."""
    safe_destination = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in destination)
    return state_dir / "snapshots" / safe_destination / f"{audience_id}.parquet"


def snapshot_size(path: Path) -> int:
    """Number of identifiers in a snapshot (0 when there is none yet)."""
    if not path.exists():
        return 0
    with duckdb.connect() as con:
        rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()
    return int(rows[0][0])


def commit_snapshot(con: duckdb.DuckDBPyConnection, select_sql: str, path: Path) -> int:
    """Atomically replace the snapshot at `path` with the rows of `select_sql` (columns id_schema, hash).

    Returns the number of identifiers written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    con.execute(
        f"COPY (SELECT DISTINCT id_schema, hash FROM ({select_sql})) TO '{_sql_path(tmp)}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return snapshot_size(path)


def commit_snapshot_file(source: Path, path: Path) -> int:
    """Atomically make the Parquet file `source` (columns id_schema, hash; distinct) the snapshot at `path`.

    A hard link when both sit on one file system (no copy of 10M hashes), a copy otherwise; `source` stays in
    place, so a commit that is retried after a crash can run again. Returns the number of identifiers.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return snapshot_size(path)


def delete_snapshot(path: Path) -> None:
    """Forget a snapshot (used when the audience it described no longer exists in TikTok)."""
    path.unlink(missing_ok=True)


def _sql_path(path: Path) -> str:
    # Paths are ours (workspace state folder), but quote defensively for DuckDB string literals.
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
