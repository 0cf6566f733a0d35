"""Write-ahead "in flight" records: what a workflow may have changed in TikTok before it committed.

Before its first request to TikTok, an upload writes the plan's adds and removes (`op`, `id_schema` and the
hex `hash` exactly as sent: hashes only, never raw values) to one Parquet file in the orchestration's
`state/inflight/` folder, atomically (temporary file, fsync, rename). The file stays there until a later
commit of the same audience makes TikTok equal a fresh plan; a workflow that died, failed or was superseded
in between leaves it behind. Every plan reads all of them (see `plan.plan_audience`): it removes anything
that may have been added (snapshot ∪ in-flight adds, minus the query) and adds anything of the query that may
have been removed (the query minus (snapshot ∖ in-flight removes)). Adding a member or removing a non-member
changes nothing in TikTok, so whatever the order of crashes, retries and new runs, the next committed run
leaves the audience equal to the query.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from ttsync.sqltext import sql_identifier, sql_literal
from ttsync.sync.snapshot import hex_words_sql

if TYPE_CHECKING:  # plan.py reads records through `inflight_sql`
    from ttsync.sync.plan import AudiencePlan


def inflight_dir(state_dir: Path, key: str) -> Path:
    """The folder of the in-flight records of one destination + orchestration (`key`)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    return state_dir / "inflight" / safe


def inflight_files(directory: Path) -> list[Path]:
    """The records in `directory`, oldest name first (temporary files of a torn write are not records)."""
    return sorted(directory.glob("*.parquet")) if directory.exists() else []


def record_inflight(
    con: duckdb.DuckDBPyConnection, plan: AudiencePlan, directory: Path, workflow_id: str
) -> Path:
    """Write the plan's adds and removes as one record before anything is sent; return its path.

    The adds are the plan's add-rows file itself, hard-linked beside the record (`<record>.adds.parquet`):
    a full upload of 10M people would otherwise copy 10M hashes before its first request. The plan writes
    its files once, to new inodes (see `diff._copy`), so the link keeps what this upload sends. Where a link
    is impossible (another file system, a Spark plan's folder of parts) the adds are copied into the record.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{workflow_id}.{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    parts = [f"SELECT 'remove' AS op, id_schema, hash FROM read_parquet({sql_literal(plan.remove_ids_path)})"]
    if not _link_adds(Path(plan.add_rows_path), _adds_file(path)):
        parts += [
            f"SELECT 'add' AS op, {sql_literal(s)} AS id_schema, {sql_identifier(s)} AS hash "
            f"FROM read_parquet({sql_literal(plan.add_rows_path)}) WHERE {sql_identifier(s)} IS NOT NULL"
            for s in plan.id_schemas
        ]
    con.execute(f"COPY ({' UNION ALL '.join(parts)}) TO {sql_literal(tmp)} (FORMAT parquet)")
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(directory)
    return path


def inflight_sql(files: Sequence[Path]) -> str:
    """SQL selecting (op, id_schema, k1..k4) of the records `files` (at least one)."""
    records = [f for f in files if not str(f).endswith(_ADDS_SUFFIX)]
    parts = []
    if records:
        listed = ", ".join(sql_literal(f) for f in records)
        parts.append(f"SELECT op, id_schema, {hex_words_sql()} FROM read_parquet([{listed}])")
    for adds in (f for f in files if str(f).endswith(_ADDS_SUFFIX)):
        # A plan's add rows: one hex column per id schema (null where the person has none).
        for schema in pq.read_schema(adds).names:
            if schema in ("row_key", "slot"):
                continue
            column = sql_identifier(schema)
            parts.append(
                f"SELECT 'add' AS op, {sql_literal(schema)} AS id_schema, {hex_words_sql(column)} "
                f"FROM read_parquet({sql_literal(adds)}) WHERE {column} IS NOT NULL"
            )
    return f"({' UNION ALL '.join(parts)})"


def clear_inflight(files: Sequence[str | Path]) -> None:
    """Forget records a commit has reconciled (TikTok now equals that commit's plan), with their adds."""
    for file in files:
        Path(file).unlink(missing_ok=True)
        _adds_file(Path(file)).unlink(missing_ok=True)


_ADDS_SUFFIX = ".adds.parquet"


def _adds_file(record: Path) -> Path:
    """The hard-linked adds of the record at `record` (`<name>.parquet` -> `<name>.adds.parquet`)."""
    name = record.name.removesuffix(".parquet")
    return record if name.endswith(".adds") else record.with_name(name + _ADDS_SUFFIX)


def _link_adds(source: Path, target: Path) -> bool:
    """Hard-link the plan's add rows to `target`; False when that cannot be done (then they are copied)."""
    if not source.is_file():
        return False
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
