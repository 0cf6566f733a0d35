"""Snapshots: the set of hashed identifiers last confirmed delivered to one audience.

A snapshot is one Parquet file with the columns `id_schema` and `k1..k4` (digests as integers, see
digests.py; hashes only: no row keys and no raw PII ever land here). After a mirror or full delivery it is the
plan's sorted new set itself (`current_ids.parquet`, see sorted_diff.py), hard-linked (an identifier shared by
two people appears twice in it); its footer counts its distinct identifiers. Unsorted snapshots (an earlier
release's, an append's union) and those written before digests were stored as integers (`id_schema`, hex
`hash`) are still read. A snapshot is replaced atomically (write a temporary file, fsync, rename) and only
after TikTok confirmed every batch of a delivery, so a crash at any point leaves the previous snapshot in place
and a re-run converges.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ttsync.sqltext import sql_literal
from ttsync.sync.prepare import read_footer

SNAPSHOT_COLUMNS = ("id_schema", "k1", "k2", "k3", "k4")


def snapshot_path(state_dir: Path, destination: str, audience_id: str) -> Path:
    """Where the snapshot of one audience of one destination lives inside a workspace state folder."""
    safe_destination = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in destination)
    return state_dir / "snapshots" / safe_destination / f"{audience_id}.parquet"


def snapshot_sql(path: Path) -> str:
    """SQL selecting (id_schema, k1, k2, k3, k4) from the snapshot file at `path`."""
    source = f"read_parquet({sql_literal(path)})"
    if "k1" in pq.read_schema(path).names:
        return f"(SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM {source})"
    # The older layout kept hex digests: derive the integer words.
    return f"(SELECT id_schema, {hex_words_sql()} FROM {source})"


def hex_words_sql(column: str = "hash") -> str:
    """SQL of the digest words `k1..k4` of a hex digest column (64 hex characters, or 32 for MD5)."""
    return ", ".join(
        f"CASE WHEN length({column}) >= {16 * (i + 1)} "
        f"THEN ('0x' || {column}[{16 * i + 1}:{16 * (i + 1)}])::UBIGINT END AS k{i + 1}"
        for i in range(4)
    )


def distinct_ids(path: Path, id_schemas: tuple[str, ...] | None = None) -> int:
    """Distinct identifiers (of `id_schemas`, default all) in a snapshot or prepared file; 0 if it is missing.

    Read from the footer when the file has one; counted by DuckDB otherwise.
    """
    if not path.exists():
        return 0
    counted = read_footer(path).distinct_ids
    if counted is not None:
        return sum(n for schema, n in counted.items() if id_schemas is None or schema in id_schemas)
    where = f"WHERE id_schema IN ({', '.join(sql_literal(s) for s in id_schemas)})" if id_schemas else ""
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(SNAPSHOT_COLUMNS)} FROM {snapshot_sql(path)} {where})"
        ).fetchall()
    return int(rows[0][0])


def commit_snapshot(con: duckdb.DuckDBPyConnection, select_sql: str, path: Path) -> int:
    """Atomically replace the snapshot at `path` with the rows of `select_sql` (columns id_schema, k1..k4).

    Returns the number of identifiers written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    con.execute(
        f"COPY (SELECT DISTINCT {', '.join(SNAPSHOT_COLUMNS)} FROM ({select_sql})) TO {sql_literal(tmp)} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return distinct_ids(path)


def commit_snapshot_file(source: Path, path: Path) -> int:
    """Atomically make the Parquet file `source` (id_schema, k1..k4: a prepared digests file) the snapshot.

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
    return distinct_ids(path)


def delete_snapshot(path: Path) -> None:
    """Forget a snapshot (used when the audience it described no longer exists in TikTok)."""
    path.unlink(missing_ok=True)


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
