"""The workspace's list applied to a run's prepared files (docs/campaigns.md#suppression-and-forget-requests):
the identifiers of suppression segments hashed for the run, and the listed identifiers (and every identifier of
a forgotten key) dropped from `prepared/`, so no run sends them again. `app.privacy` calls these after
`prepare`; previews (`run --plan`, `campaigns plan`, `segments preview`) call them the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.app.privacy_list import FORGET, SUPPRESSION, append_hashes, hashes_file, hashes_table, keys_file
from ttsync.errors import ConfigError
from ttsync.identity.digests import HEX_SQL, KEY_COLUMNS
from ttsync.identity.prepare import Preparer
from ttsync.sources import open_source
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.sync.columns import USER_ID_KINDS, audience_column_specs
from ttsync.sync.prepare import DISTINCT_IDS_KEY, PEOPLE_KEY, ids_batch
from ttsync.writeback.collect import EXCLUDED_FILE

# The identifiers of the workspace's suppression segments, hashed by each run (relative to its run folder).
SEGMENT_HASHES_FILE = "prepared/suppression_segments.parquet"
# A dry run's identifiers of forgotten keys (a run adds them to the workspace's list; a preview changes
# nothing there, so it keeps them in its own folder).
KEY_HASHES_FILE = "prepared/forgotten_keys.parquet"


def hash_files(state_dir: Path, run_dir: Path) -> list[Path]:
    """The listed identifiers that apply to a run: the workspace's list, and the run's suppression segments."""
    files = [hashes_file(state_dir), run_dir / SEGMENT_HASHES_FILE, run_dir / KEY_HASHES_FILE]
    return [f for f in files if f.is_file()]


def read_hashes(files: list[Path]) -> str:
    """A DuckDB relation over listed-identifier files (id_schema, k1..k4, origin, ...)."""
    return f"read_parquet([{', '.join(sql_literal(f) for f in files)}], union_by_name = true)"


def hash_suppression_segments(store: Store, root: Path, run_dir: Path) -> int:
    """Hash the identifiers of every suppression segment (`suppression: true`) into the run's
    `SEGMENT_HASHES_FILE`, read fresh on each run (someone who leaves the segment may be sent again).
    Identifier columns are found by name, as `segments preview` does. Returns the identifiers written."""
    segments = [s for s in repos.list_segments(store) if s.suppression]
    path = run_dir / SEGMENT_HASHES_FILE
    path.unlink(missing_ok=True)
    if not segments:
        return 0
    pieces: list[pa.Table] = []
    for segment in segments:
        with open_source(repos.get_source(store, segment.source), root) as source:
            columns = source.columns(segment.query)
            try:
                specs = audience_column_specs(
                    user_id_types=list(USER_ID_KINDS), mapping={}, columns=columns, default_region=None
                )
            except ConfigError as exc:
                raise ConfigError(
                    f"suppression segment {segment.name!r} returns no identifier column (email, phone, idfa or "
                    "aaid): return one so its people can be suppressed"
                ) from exc
            with Preparer(specs, key_column=segment.key_column) as preparer:
                for batch in source.stream(segment.query):
                    ids = preparer.process(batch).ids
                    if ids.num_rows:
                        pieces.append(
                            pa.Table.from_batches([ids_batch(ids)]).select(["id_schema", *KEY_COLUMNS])
                        )
    path.parent.mkdir(parents=True, exist_ok=True)
    table = (
        pa.concat_tables(pieces)
        if pieces
        else pa.table(
            {"id_schema": pa.array([], pa.string())} | {k: pa.array([], pa.uint64()) for k in KEY_COLUMNS}
        )
    )
    table = table.append_column("origin", pa.array([SUPPRESSION] * table.num_rows, pa.string()))
    pq.write_table(table, path)
    return int(table.num_rows)


def filter_prepared(state_dir: Path, prepared: Path, *, dry_run: bool = False) -> int:
    """Drop the listed identifiers (and every identifier of a listed key) from a run's prepared files; the
    identifiers found through keys join the list (not in a dry run: a preview changes nothing of the
    workspace). Returns the identifiers dropped (0: files untouched)."""
    keys = keys_file(state_dir)
    listed_files = hash_files(state_dir, prepared.parent)
    ids = prepared / "ids.parquet"
    if not ids.is_file() or not (listed_files or keys.is_file()):
        return 0
    words = ", ".join(KEY_COLUMNS)
    same = " AND ".join(f"i.{k} IS NOT DISTINCT FROM h.{k}" for k in KEY_COLUMNS)
    listed_hashes = (
        # One row per identifier: a forget request outranks a suppression list ('forget' < 'suppression').
        f"(SELECT id_schema, {words}, min(origin) AS origin FROM {read_hashes(listed_files)} GROUP BY ALL)"
        if listed_files
        else f"(SELECT NULL::VARCHAR AS id_schema, {', '.join(f'NULL::UBIGINT AS {k}' for k in KEY_COLUMNS)}, "
        "NULL::VARCHAR AS origin WHERE false)"
    )
    listed_keys = (
        f"(SELECT DISTINCT row_key FROM read_parquet({sql_literal(keys)}))"
        if keys.is_file()
        else "(SELECT NULL::VARCHAR AS row_key WHERE false)"
    )
    with duckdb.connect() as con:
        con.execute(
            f"CREATE TEMP TABLE hit AS SELECT i.row_key, i.id_schema, {', '.join(f'i.{k}' for k in KEY_COLUMNS)}, "
            f"CASE WHEN i.row_key IN (SELECT row_key FROM {listed_keys}) THEN 'forgotten' "
            f"WHEN h.origin = 'suppression' THEN 'suppressed' ELSE 'forgotten' END AS reason "
            f"FROM read_parquet({sql_literal(ids)}) i LEFT JOIN {listed_hashes} h "
            f"ON i.id_schema = h.id_schema AND {same} "
            f"WHERE h.id_schema IS NOT NULL OR i.row_key IN (SELECT row_key FROM {listed_keys})"
        )
        hit = int(con.execute("SELECT count(*) FROM hit").fetchone()[0])  # type: ignore[index]
        if not hit:
            return 0
        # Identifiers found through a forgotten key: keep them listed, so they are removed and never re-added.
        through_keys = con.execute(
            f"SELECT DISTINCT id_schema, {HEX_SQL} FROM hit WHERE reason = 'forgotten' "
            f"AND row_key IN (SELECT row_key FROM {listed_keys})"
        ).fetchall()
        kept = (
            f"SELECT * FROM read_parquet({sql_literal(ids)}) i ANTI JOIN hit h "
            f"ON i.id_schema = h.id_schema AND {same}"
        )
        new_ids = con.sql(kept).to_arrow_table()
        con.register("kept_ids", new_ids)
        people = int(con.execute("SELECT count(DISTINCT row_key) FROM kept_ids").fetchone()[0])  # type: ignore[index]
        distinct = dict(
            con.execute(
                f"SELECT id_schema, count(*) FROM (SELECT DISTINCT id_schema, {words} FROM kept_ids) GROUP BY 1"
            ).fetchall()
        )
        excluded = con.sql("SELECT row_key, id_schema, reason FROM hit").to_arrow_table()
    footer = {DISTINCT_IDS_KEY: json.dumps({str(k): int(v) for k, v in distinct.items()}, sort_keys=True),
              PEOPLE_KEY: str(people)}  # fmt: skip
    _rewrite(ids, new_ids, footer)
    digests = prepared / "digests.parquet"
    if digests.is_file():
        _rewrite(digests, new_ids.select(["id_schema", *KEY_COLUMNS]), footer)
    pq.write_table(excluded, prepared.parent / EXCLUDED_FILE)
    found = [(str(s), str(h)) for s, h in through_keys]
    if not dry_run:
        append_hashes(state_dir, found, FORGET, "keys")
    elif found:
        pq.write_table(hashes_table(found, FORGET, "keys"), prepared.parent / KEY_HASHES_FILE)
    return hit


def _rewrite(path: Path, table: pa.Table, footer: dict[str, str]) -> None:
    """Replace a prepared file (a new file renamed over it: a committed snapshot may be a hard link to it)."""
    table = table.replace_schema_metadata(footer)
    tmp = path.with_suffix(".privacy.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def list_applies(state_dir: Path, store: Store) -> bool:
    """Whether the workspace lists anyone: forget requests, suppression lists or suppression segments."""
    return (
        hashes_file(state_dir).is_file()
        or keys_file(state_dir).is_file()
        or any(s.suppression for s in repos.list_segments(store))
    )


def filter_preview(store: Store, root: Path, state_dir: Path, folder: Path) -> int:
    """A preview's privacy step over `folder/prepared/ids.parquet` (a temporary folder): hash the suppression
    segments and drop the listed identifiers, as a run does after `prepare`, changing nothing of the
    workspace. Returns the identifiers dropped."""
    hash_suppression_segments(store, root, folder)
    return filter_prepared(state_dir, folder / "prepared", dry_run=True)
