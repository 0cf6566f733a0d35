"""Plan an audience delivery: diff the newly prepared hashed set against the committed snapshot.

Everything here is DuckDB over Parquet (no Python loop over rows), with a memory limit and a spill folder, so
planning 10M people stays within a bounded footprint.

Inputs are the prepared identifiers written by the prepare stage (Parquet files with `row_key`, `id_schema`
and the digest words `k1..k4`) and the snapshot of the audience (the same columns, see snapshot.py). Outputs
are two Parquet files in the run folder, with hex digests as TikTok takes them: the rows to add (one row per
person and identifier slot, aligned to the id schema) and the identifiers to remove. The SQL of the diff
is in diff.py; reading the plan's files back in batches, in batches.py.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ttsync.sqltext import sql_literal
from ttsync.sync.batches import batch_count, iter_add_batches, iter_remove_batches
from ttsync.sync.diff import (
    _EMPTY_SNAPSHOT,
    WORDS,
    _cap_changes,
    _copy,
    _diff_against_snapshot,
    _digests,
    _Files,
    _one,
    _rows,
    _same,
    _write_add_rows,
    _write_merged,
)
from ttsync.sync.inflight import inflight_sql
from ttsync.sync.modes import SyncMode
from ttsync.sync.prepare import read_footer
from ttsync.sync.snapshot import commit_snapshot, commit_snapshot_file, distinct_ids, snapshot_sql
from ttsync.sync.sorted_diff import sort_and_merge

__all__ = [
    "AudiencePlan",
    "SyncMode",
    "batch_count",
    "commit_plan_snapshot",
    "connect",
    "iter_add_batches",
    "iter_remove_batches",
    "next_snapshot_sql",
    "plan_audience",
]


@dataclass(frozen=True)
class AudiencePlan:
    """What one delivery will send. Counts are of identifiers (id_schema, hash) unless named `people`."""

    mode: SyncMode
    id_schemas: tuple[str, ...]
    add_rows_path: Path
    remove_ids_path: Path
    current_ids_path: Path  # the new set (id_schema, k1..k4; no row keys): the snapshot to be in mirror mode
    current_ids: int  # distinct identifiers in the new set
    current_people: int  # distinct row keys with at least one identifier of the id schemas
    previous_ids: int  # identifiers in the snapshot (0 for a full upload)
    add_ids: int
    add_rows: int
    remove_ids: int
    full_upload: bool
    inflight: tuple[str, ...] = ()  # in-flight records this plan reconciles (cleared when it commits)
    # Changes a change cap (a campaign's learning-phase guard) left for later syncs; never dropped: the next
    # plan diffs against the snapshot this one commits, which holds only what was sent.
    deferred_adds: int = 0
    deferred_removes: int = 0

    @property
    def remove_share(self) -> float:
        """Share of the previous audience this plan removes (0.0 when there was none)."""
        return self.remove_ids / self.previous_ids if self.previous_ids else 0.0

    def to_state(self) -> dict[str, object]:
        """Everything needed to rebuild the plan in another process (a resumed workflow)."""
        return self.to_dict() | {
            "add_rows_path": str(self.add_rows_path),
            "remove_ids_path": str(self.remove_ids_path),
            "current_ids_path": str(self.current_ids_path),
            "inflight": list(self.inflight),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AudiencePlan:
        """Inverse of `to_state`."""
        return cls(
            mode=SyncMode(state["mode"]),
            id_schemas=tuple(state["id_schemas"]),
            add_rows_path=Path(state["add_rows_path"]),
            remove_ids_path=Path(state["remove_ids_path"]),
            current_ids_path=Path(state["current_ids_path"]),
            current_ids=int(state["current_ids"]),
            current_people=int(state["current_people"]),
            previous_ids=int(state["previous_ids"]),
            add_ids=int(state["add_ids"]),
            add_rows=int(state["add_rows"]),
            remove_ids=int(state["remove_ids"]),
            full_upload=bool(state["full_upload"]),
            inflight=tuple(state.get("inflight") or ()),
            deferred_adds=int(state.get("deferred_adds") or 0),
            deferred_removes=int(state.get("deferred_removes") or 0),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly summary (no paths)."""
        return {
            "mode": self.mode.value,
            "id_schemas": list(self.id_schemas),
            "current_ids": self.current_ids,
            "current_people": self.current_people,
            "previous_ids": self.previous_ids,
            "add_ids": self.add_ids,
            "add_rows": self.add_rows,
            "remove_ids": self.remove_ids,
            "remove_share": round(self.remove_share, 6),
            "full_upload": self.full_upload,
            "deferred_adds": self.deferred_adds,
            "deferred_removes": self.deferred_removes,
        }


def connect(work_dir: Path, memory_limit: str = "512MB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory limit and a spill folder inside the run's work folder."""
    spill = work_dir / "duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads})
    con.execute(f"SET temp_directory = {sql_literal(spill)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def plan_audience(
    con: duckdb.DuckDBPyConnection,
    *,
    prepared_glob: str,
    snapshot: Path | None,
    id_schemas: Sequence[str],
    mode: SyncMode,
    work_dir: Path,
    digests_path: Path | None = None,
    inflight: Sequence[Path] = (),
    max_change: int | None = None,
) -> AudiencePlan:
    """Compute adds and removes for one audience and write them to Parquet files in `work_dir`.

    `snapshot` is None (or a missing file) for a first delivery or when the audience must be re-uploaded in
    full; `mode` CREATE and REPLACE always upload in full. `inflight` are the write-ahead records of
    workflows that may have changed the audience without committing (see inflight.py): the plan removes what
    they may have added and adds back what they may have removed. `digests_path` is the prepare stage's digests-only
    file of the same identifiers: it becomes the plan's new set as it is (else the plan writes one).
    Identifiers are compared by their digest words (see digests.py); hex is rebuilt only for the rows sent.
    `max_change` caps the identifiers added plus removed by a re-sync against a snapshot (no in-flight
    records: those must converge in full); the rest is deferred and counted (`deferred_adds/removes`).
    """
    schemas = tuple(id_schemas)
    if digests_path is not None and not digests_path.exists():
        digests_path = None  # the prepare stage leaves the digests-only set to the plan (sorted_diff.py)
    if not schemas:
        raise ValueError("at least one id schema is required")
    work_dir.mkdir(parents=True, exist_ok=True)
    has_snapshot = snapshot is not None and snapshot.exists()
    if mode in (SyncMode.CREATE, SyncMode.REPLACE):
        inflight = ()  # a new audience, or one replaced as a whole: nothing sent before can linger
    full_upload = mode in (SyncMode.CREATE, SyncMode.REPLACE) or (not has_snapshot and not inflight)
    files = _Files.in_folder(work_dir)
    prepared_files = sorted(glob.glob(prepared_glob))
    source = f"read_parquet({sql_literal(prepared_glob)}, union_by_name = true)"
    prepared = f"(SELECT * FROM {source} WHERE id_schema IN ({', '.join(sql_literal(s) for s in schemas)}) AND k1 IS NOT NULL)"

    # The new set sorted by its words (the snapshot to be), merged with the snapshot when it is sorted too:
    # a re-sync is one sort and one linear pass (sorted_diff.py). None: DuckDB does it all (MD5 digests, no
    # compiled kernel, several prepared files).
    merged = None
    if len(prepared_files) == 1:
        diffable = has_snapshot and not full_upload and not inflight
        merged = sort_and_merge(Path(prepared_files[0]), schemas, snapshot if diffable else None, work_dir)
        if merged is not None and not merged.merged:
            merged.wait()  # a DuckDB diff or group-by of the whole set follows: not beside the records (memory)
    # Intermediate results go to Parquet rather than tables: each is read once or twice, and a resumed
    # workflow in another process can still use them.
    if full_upload:
        # Everyone is added. One owner row key per identifier: two customers sharing an email must not send
        # that email twice.
        _copy(
            con,
            f"SELECT id_schema, {WORDS}, min(row_key) AS row_key FROM {prepared} GROUP BY ALL",
            files.owners,
        )
        _copy(con, "SELECT NULL::VARCHAR AS id_schema, NULL::VARCHAR AS hash WHERE false", files.remove_ids)
        previous_ids = 0
    elif inflight:
        snap = snapshot_sql(snapshot) if snapshot is not None and has_snapshot else _EMPTY_SNAPSHOT
        records = inflight_sql(inflight)
        same = " AND ".join(["s.id_schema = r.id_schema", _same("s", "r")])
        # Surely in TikTok: the snapshot minus anything an unfinished workflow may have removed.
        present = (
            f"(SELECT s.* FROM {snap} s ANTI JOIN (SELECT * FROM {records} WHERE op = 'remove') r ON {same})"
        )
        # Possibly in TikTok: the snapshot plus anything an unfinished workflow may have added.
        possible = (
            f"(SELECT * FROM {snap} UNION ALL SELECT id_schema, {WORDS} FROM {records} WHERE op = 'add')"
        )
        _diff_against_snapshot(con, source, prepared, present, schemas, mode, files, possible=possible)
        previous_ids = _one(con, f"SELECT count(*) FROM (SELECT DISTINCT * FROM {possible} WHERE id_schema IN "
                            f"({', '.join(sql_literal(s) for s in schemas)}))")[0]  # fmt: skip
    elif merged is not None and merged.merged:
        _write_merged(con, merged, Path(prepared_files[0]), mode, files)
        assert snapshot is not None
        previous_ids = distinct_ids(snapshot, schemas)
    else:
        assert snapshot is not None
        _diff_against_snapshot(con, source, prepared, snapshot_sql(snapshot), schemas, mode, files)
        previous_ids = distinct_ids(snapshot, schemas)
    deferred: tuple[int, int] | None = None
    if max_change is not None and not full_upload and not inflight and snapshot is not None:
        deferred = _cap_changes(con, snapshot, files, max_change, work_dir)
    _write_add_rows(con, f"read_parquet({sql_literal(files.owners)})", schemas, files.add_rows)

    add_ids, remove_ids = _rows(files.owners), _rows(files.remove_ids)
    footer = read_footer(Path(prepared_files[0])) if len(prepared_files) == 1 else None
    if full_upload:
        current_ids = add_ids
    elif mode is SyncMode.MIRROR and not inflight:
        current_ids = previous_ids + add_ids - remove_ids  # exactly: the snapshot minus removes plus adds
    elif footer is not None and footer.distinct_ids is not None:
        current_ids = sum(n for schema, n in footer.distinct_ids.items() if schema in schemas)
    else:
        counted = f"SELECT count(*) FROM (SELECT DISTINCT id_schema, {WORDS} FROM {prepared})"
        current_ids = _one(con, counted)[0]
    # The footer's people count is for every identifier the prepare stage kept: usable when all are ours.
    if footer is not None and footer.people is not None and set(footer.distinct_ids or {}) <= set(schemas):
        current_people = footer.people
    else:
        current_people = _one(con, f"SELECT count(DISTINCT row_key) FROM {prepared}")[0]
    if deferred is not None:
        # The snapshot to be is what TikTok will hold after this capped delivery, not the query's whole set.
        current_ids = previous_ids + add_ids - remove_ids
        digests_path = work_dir / "capped_ids.parquet"
    elif merged is not None:
        digests_path = merged.current_ids_path
    if merged is not None:
        merged.wait()
    return AudiencePlan(
        mode=mode,
        id_schemas=schemas,
        add_rows_path=files.add_rows,
        remove_ids_path=files.remove_ids,
        current_ids_path=digests_path if digests_path is not None else _digests(con, prepared, work_dir),
        current_ids=current_ids,
        current_people=current_people,
        previous_ids=previous_ids,
        add_ids=add_ids,
        add_rows=_rows(files.add_rows),
        remove_ids=remove_ids,
        full_upload=full_upload,
        inflight=tuple(str(f) for f in inflight),
        deferred_adds=deferred[0] if deferred else 0,
        deferred_removes=deferred[1] if deferred else 0,
    )


def next_snapshot_sql(plan: AudiencePlan, snapshot: Path | None) -> str | None:
    """SQL selecting the snapshot to commit once every batch of the plan is confirmed (any connection), or
    None when the snapshot is exactly the plan's `current_ids_path` file (every mode but a non-full append)."""
    if plan.mode is SyncMode.APPEND and not plan.full_upload and snapshot is not None and snapshot.exists():
        current = f"SELECT id_schema, {WORDS} FROM read_parquet({sql_literal(plan.current_ids_path)})"
        return f"{current} UNION SELECT * FROM {snapshot_sql(snapshot)}"
    return None


def commit_plan_snapshot(
    plan: AudiencePlan, snapshot: Path, work_dir: Path, memory_limit: str = "512MB"
) -> int:
    """Make the snapshot what TikTok now holds, once every batch of `plan` is confirmed; returns its size."""
    union_sql = next_snapshot_sql(plan, snapshot)
    if union_sql is None:
        return commit_snapshot_file(plan.current_ids_path, snapshot)
    con = connect(work_dir, memory_limit=memory_limit)
    try:
        return commit_snapshot(con, union_sql, snapshot)
    finally:
        con.close()
