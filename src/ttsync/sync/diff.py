"""The SQL of a plan (plan.py): the diff against the snapshot, the change cap, the add rows, and the small
DuckDB and Parquet helpers they share. Everything is DuckDB over Parquet, no Python loop over rows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.identity.digests import HEX_SQL, KEY_COLUMNS
from ttsync.sqltext import sql_identifier, sql_literal
from ttsync.sync.modes import SyncMode
from ttsync.sync.snapshot import snapshot_sql
from ttsync.sync.sorted_diff import SortedDiff, row_keys

WORDS = ", ".join(KEY_COLUMNS)


def _cap_changes(
    con: duckdb.DuckDBPyConnection, snapshot: Path, files: _Files, max_change: int, work_dir: Path
) -> tuple[int, int] | None:
    """Keep at most `max_change` of the diff (adds and removes in proportion, each in a stable order so the
    same identifiers go first on every try); rewrite the owners and remove files and write the capped
    snapshot-to-be (`capped_ids.parquet`). Returns the deferred (adds, removes), or None when under the cap."""
    adds, removes = _rows(files.owners), _rows(files.remove_ids)
    if adds + removes <= max_change:
        return None
    keep_removes = (max_change * removes) // (adds + removes)
    keep_adds = max_change - keep_removes
    diff = f"read_parquet({sql_literal(files.diff)})"
    order = f"id_schema, {WORDS}"
    kept_owners, kept_removed = work_dir / "owners_capped.parquet", work_dir / "removed_capped.parquet"
    _copy(
        con,
        f"SELECT * FROM read_parquet({sql_literal(files.owners)}) ORDER BY row_key, {order} LIMIT {keep_adds}",
        kept_owners,
    )
    _copy(con, f"SELECT id_schema, {WORDS} FROM {diff} WHERE removed ORDER BY {order} LIMIT {keep_removes}",
          kept_removed)  # fmt: skip
    removed = f"read_parquet({sql_literal(kept_removed)})"
    _copy(con, f"SELECT id_schema, {HEX_SQL} AS hash FROM {removed}", files.remove_ids)
    os.replace(kept_owners, files.owners)
    snap = snapshot_sql(snapshot)
    _copy(
        con,
        f"SELECT s.id_schema, {', '.join('s.' + k for k in KEY_COLUMNS)} FROM {snap} s "
        f"ANTI JOIN {removed} r ON s.id_schema = r.id_schema AND {_same('s', 'r')} "
        f"UNION ALL SELECT id_schema, {WORDS} FROM read_parquet({sql_literal(files.owners)})",
        work_dir / "capped_ids.parquet",
    )
    return adds - keep_adds, removes - keep_removes


# A snapshot of nothing (no delivery committed yet, but in-flight records to reconcile).
_EMPTY_SNAPSHOT = (
    "(SELECT NULL::VARCHAR AS id_schema, NULL::UBIGINT AS k1, NULL::UBIGINT AS k2, NULL::UBIGINT AS k3, "
    "NULL::UBIGINT AS k4 WHERE false)"
)


@dataclass(frozen=True)
class _Files:
    """The plan's Parquet files in its work folder."""

    owners: Path  # identifiers to add, each with its owner row key
    diff: Path  # changed identifiers (digest words, removed or not)
    add_rows: Path
    remove_ids: Path

    @classmethod
    def in_folder(cls, work_dir: Path) -> _Files:
        return cls(*(work_dir / f"{name}.parquet" for name in ("owners", "diff", "add_rows", "remove_ids")))


def _diff_against_snapshot(
    con: duckdb.DuckDBPyConnection,
    source: str,
    prepared: str,
    snap: str,
    schemas: tuple[str, ...],
    mode: SyncMode,
    files: _Files,
    *,
    possible: str | None = None,
) -> None:
    """Write the owners of the added identifiers and the removed identifiers (hex) of a re-sync.

    A re-sync mostly re-confirms what TikTok has. The digests of each id schema are diffed on their own (a join
    on integer words; only-new are adds, only-in-snapshot are removes), then row keys are read for the few
    added identifiers only. `possible` (default: `snap`) is what TikTok may hold beyond `snap` (what it surely
    holds): removes are diffed against it.
    """
    parts = []
    for schema in schemas:
        cur = f"(SELECT {WORDS} FROM {source} WHERE id_schema = {sql_literal(schema)} AND k1 IS NOT NULL)"
        old = f"(SELECT {WORDS} FROM {snap} WHERE id_schema = {sql_literal(schema)})"
        if possible is not None:
            maybe = f"(SELECT {WORDS} FROM {possible} WHERE id_schema = {sql_literal(schema)})"
            parts.append(
                f"SELECT {sql_literal(schema)} AS id_schema, {WORDS}, false AS removed "
                f"FROM {cur} c ANTI JOIN {old} s ON {_same('c', 's')}"
            )
            if mode is not SyncMode.APPEND:
                parts.append(
                    f"SELECT {sql_literal(schema)} AS id_schema, {WORDS}, true AS removed "
                    f"FROM {maybe} s ANTI JOIN {cur} c ON {_same('s', 'c')}"
                )
        elif mode is SyncMode.APPEND:
            parts.append(
                f"SELECT {sql_literal(schema)} AS id_schema, {WORDS}, false AS removed "
                f"FROM {cur} c ANTI JOIN {old} s ON {_same('c', 's')}"
            )
        else:
            either = ", ".join(f"coalesce(c.{k}, s.{k}) AS {k}" for k in KEY_COLUMNS)
            parts.append(
                f"SELECT {sql_literal(schema)} AS id_schema, {either}, c.k1 IS NULL AS removed "
                f"FROM {cur} c FULL OUTER JOIN {old} s ON {_same('c', 's')} WHERE c.k1 IS NULL OR s.k1 IS NULL"
            )
    # DISTINCT: an identifier two people share appears twice in the prepared file (and its snapshot).
    _copy(con, f"SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)})", files.diff)
    diff = f"read_parquet({sql_literal(files.diff)})"
    _copy(
        con,
        f"SELECT p.id_schema, {', '.join('p.' + k for k in KEY_COLUMNS)}, min(p.row_key) AS row_key "
        f"FROM {prepared} p SEMI JOIN (SELECT * FROM {diff} WHERE NOT removed) a "
        f"ON p.id_schema = a.id_schema AND {_same('p', 'a')} GROUP BY ALL",
        files.owners,
    )
    _copy(con, f"SELECT id_schema, {HEX_SQL} AS hash FROM {diff} WHERE removed", files.remove_ids)


def _write_merged(
    con: duckdb.DuckDBPyConnection, merged: SortedDiff, ids_path: Path, mode: SyncMode, files: _Files
) -> None:
    """The files `_diff_against_snapshot` writes, from the sort-merge's changed identifiers (sorted_diff.py):
    row keys are read for the added identifiers only, one owner (the least row key) per identifier."""
    schemas = sorted(merged.adds)
    keys = row_keys(ids_path, {s: merged.adds[s]["idx"] for s in schemas})
    added = pa.concat_tables(
        [_words_table(s, merged.adds[s][list(KEY_COLUMNS)], row_key=keys[s]) for s in schemas]
    ).combine_chunks()
    owners = added.group_by(["id_schema", *KEY_COLUMNS], use_threads=False).aggregate([("row_key", "min")])
    owners = owners.select(["id_schema", *KEY_COLUMNS, "row_key_min"]).rename_columns(
        ["id_schema", *KEY_COLUMNS, "row_key"]
    )
    removed = pa.concat_tables(
        [
            _words_table(s, merged.removes[s] if mode is not SyncMode.APPEND else np.zeros((0, 4), np.uint64))
            for s in schemas
        ]
    )
    diff = pa.concat_tables(
        [
            owners.drop_columns(["row_key"]).append_column("removed", pa.repeat(False, owners.num_rows)),
            removed.append_column("removed", pa.repeat(True, removed.num_rows)),
        ]
    )
    for table, path in ((owners, files.owners), (diff, files.diff)):
        path.unlink(missing_ok=True)
        pq.write_table(table, path)
    _copy(con, f"SELECT id_schema, {HEX_SQL} AS hash FROM read_parquet({sql_literal(files.diff)}) WHERE removed",
          files.remove_ids)  # fmt: skip


def _words_table(schema: str, words: np.ndarray, row_key: pa.Array | None = None) -> pa.Table:
    """A table of (id_schema, k1..k4[, row_key]) from words: a RECORD array or an (n, 4) uint64 array."""
    n = len(words)
    columns = [
        np.ascontiguousarray(words[k] if words.dtype.names else words[:, i])
        for i, k in enumerate(KEY_COLUMNS)
    ]
    table = pa.table(
        [pa.repeat(pa.scalar(schema, pa.string()), n), *(pa.array(c, pa.uint64()) for c in columns)],
        names=["id_schema", *KEY_COLUMNS],
    )
    return table.append_column("row_key", row_key.cast(pa.string())) if row_key is not None else table


def _write_add_rows(
    con: duckdb.DuckDBPyConnection, owners: str, schemas: tuple[str, ...], path: Path
) -> None:
    """The rows to add, one column per id schema with hex digests (null: the person has none of that type)."""
    if len(schemas) == 1:
        # One identifier per row: every owner is its own add row.
        _copy(
            con, f"SELECT row_key, 1 AS slot, {HEX_SQL} AS {sql_identifier(schemas[0])} FROM {owners}", path
        )
        return
    pivot = ", ".join(
        f"max(hash) FILTER (WHERE id_schema = {sql_literal(s)}) AS {sql_identifier(s)}" for s in schemas
    )
    # A person with two emails and one phone becomes two rows: [e1, p1] and [e2, {}], aligned to id_schema.
    _copy(
        con,
        f"""WITH numbered AS (
              SELECT row_key, id_schema, hash,
                     row_number() OVER (PARTITION BY row_key, id_schema ORDER BY hash) AS slot
              FROM (SELECT row_key, id_schema, {HEX_SQL} AS hash FROM {owners}))
            SELECT row_key, slot, {pivot} FROM numbered GROUP BY row_key, slot""",
        path,
    )


def _digests(con: duckdb.DuckDBPyConnection, prepared: str, work_dir: Path) -> Path:
    """The prepared identifiers without row keys, in one file (the snapshot to be: hashes only)."""
    path = work_dir / "current_ids.parquet"
    _copy(con, f"SELECT id_schema, {WORDS} FROM {prepared}", path)
    return path


def _same(a: str, b: str) -> str:
    """Join condition: the digests of aliases `a` and `b` are equal (all four words; an MD5 has null k3, k4)."""
    return " AND ".join(
        f"{a}.{k} = {b}.{k}" if k in ("k1", "k2") else f"{a}.{k} IS NOT DISTINCT FROM {b}.{k}"
        for k in KEY_COLUMNS
    )


def _rows(path: Path) -> int:
    """Rows in a Parquet file (from its footer)."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def _copy(con: duckdb.DuckDBPyConnection, select_sql: str, path: Path) -> None:
    # Always a new file (inode): an upload's in-flight record may hard-link an earlier plan's add rows, and
    # writing over them in place (a re-planned workflow) would change what that record says was sent.
    path.unlink(missing_ok=True)
    con.execute(f"COPY ({select_sql}) TO {sql_literal(path)} (FORMAT parquet)")


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, ...]:
    rows = con.execute(sql).fetchall()  # fetchall finishes the result; DuckDB 2 refuses work on an open one
    return tuple(int(v) for v in rows[0])
