"""Forget requests and suppression lists (docs/campaigns.md#suppression-and-forget-requests): people that no
audience of the workspace may hold, for orchestrations and campaigns alike.

The list lives in `STATE/privacy/`: `hashes.parquet` (id schema and SHA-256 digest words, as snapshots keep
them) and `keys.parquet` (warehouse keys in their stored form, see `ttsync rowkey`). Values are hashed the
moment they arrive; nothing raw is kept. Every audience run applies the list in two places (`with_privacy`
wraps the run's own tasks, the way write-back adds its task):

- after `prepare`: the listed identifiers, and every identifier of a listed key, leave the prepared files, so
  no run sends them again (an identifier found through a key joins `hashes.parquet`); the rows removed are
  recorded in `prepared/excluded.parquet` (row key, id schema, reason) for write-back;
- before `plan`: listed identifiers still in the audience's snapshot are deleted from TikTok at once and
  from the snapshot, so they bypass the remove guard and a campaign's learning-phase guard (a privacy
  request is not a change to pace); an audit entry records the audience and how many were removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.app.audit import record
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.errors import ConfigError
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.identity.digests import DIGEST_FIELDS, HEX_SQL, KEY_COLUMNS, digest_keys
from ttsync.identity.prepare import Preparer
from ttsync.identity.scalar import SHA256_HEX_RE
from ttsync.sources import open_source
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.sync.columns import USER_ID_KINDS, audience_column_specs
from ttsync.sync.prepare import DISTINCT_IDS_KEY, PEOPLE_KEY, ids_batch
from ttsync.sync.snapshot import snapshot_sql
from ttsync.workflows.engine import TaskContext, TaskSpec
from ttsync.writeback.collect import EXCLUDED_FILE
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher

HASHES_SCHEMA = pa.schema(
    [("id_schema", pa.string()), *DIGEST_FIELDS, ("origin", pa.string()), ("request", pa.string()),
     ("added_at", pa.timestamp("us", tz="UTC"))]
)  # fmt: skip
KEYS_SCHEMA = pa.schema(
    [("row_key", pa.string()), ("request", pa.string()), ("added_at", pa.timestamp("us", tz="UTC"))]
)
FORGET, SUPPRESSION = "forget", "suppression"
# What each kind of value is hashed as (the mapping API's SHA-256 names; MAIDs may be either platform's).
_SCHEMAS = {"email": ("EMAIL_SHA256",), "phone": ("PHONE_SHA256",), "maid": ("IDFA_SHA256", "AAID_SHA256")}
_DELETE_BATCH = 10_000  # identifiers per `segment/mapping/` delete
# The identifiers of the workspace's suppression segments, hashed by each run (relative to its run folder).
SEGMENT_HASHES_FILE = "prepared/suppression_segments.parquet"


def privacy_dir(state_dir: Path) -> Path:
    """Where the workspace's forget requests and suppression lists live."""
    return state_dir / "privacy"


@dataclass
class Added:
    """What one forget request or suppression upload added (counts only)."""

    request: str
    identifiers: int = 0
    keys: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> values refused

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`."""
        return {"request": self.request, "identifiers": self.identifiers, "keys": self.keys,
                "rejected": self.rejected}  # fmt: skip


def forget(
    state_dir: Path,
    store: Store,
    *,
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    maids: Sequence[str] = (),
    keys: Sequence[str] = (),
    region: str | None = None,
    actor: str = "cli",
) -> Added:
    """Record a forget request: the values are hashed here (and dropped), the hashes join the workspace's
    list, and an audit entry records the request with its hashes (never a value). The next run of every
    audience removes them (see the module docstring)."""
    added = Added(request=uuid.uuid4().hex[:12])
    rows: list[tuple[str, str]] = []
    for kind, values in (("email", emails), ("phone", phones), ("maid", maids)):
        for value in values:
            try:
                normalized_kind = "idfa" if kind == "maid" else kind
                digest = hash_identifier(normalized_kind, value, region=region)
            except InvalidIdentifier as bad:
                added.rejected[bad.reason] = added.rejected.get(bad.reason, 0) + 1
                continue
            rows += [(schema, digest) for schema in _SCHEMAS[kind]]
    stored_keys = stored_row_keys(workspace_hasher(store), list(keys)) if keys else []
    if not rows and not stored_keys:
        raise ConfigError(
            "nothing to forget: every value was refused ("
            + ", ".join(f"{reason} {n}" for reason, n in sorted(added.rejected.items()))
            + "); give e-mails, phone numbers in international form (+1...) or with --region, advertising "
            "ids, or warehouse keys"
            if added.rejected
            else "nothing to forget: give --email, --phone, --maid, --key or --file"
        )
    _append_hashes(state_dir, rows, FORGET, added.request)
    _append_keys(state_dir, stored_keys, added.request)
    added.identifiers, added.keys = len({d for _, d in rows}), len(stored_keys)
    record(store, actor, "privacy.forget", f"request:{added.request}",
           {"hashes": sorted({d for _, d in rows}), "keys": len(stored_keys), "rejected": added.rejected})  # fmt: skip
    return added


def add_suppression_hashes(
    state_dir: Path, store: Store, name: str, user_id_type: str, lines: Iterable[str], *, actor: str = "cli"
) -> Added:
    """Add an uploaded list of SHA-256 hex digests (one a line, already hashed by the sender) of one user id
    type to the suppression list `name`; lines that are not a SHA-256 hex digest are counted, not kept."""
    schema = {
        "EMAIL": "EMAIL_SHA256",
        "PHONE": "PHONE_SHA256",
        "IDFA": "IDFA_SHA256",
        "AAID": "AAID_SHA256",
    }.get(user_id_type.upper())
    if schema is None:
        raise ConfigError(f"--type {user_id_type!r}: use EMAIL, PHONE, IDFA or AAID")
    added = Added(request=name)
    rows = []
    for line in lines:
        text = line.strip().lower()
        if not text:
            continue
        if not SHA256_HEX_RE.match(text):
            added.rejected["not_sha256_hex"] = added.rejected.get("not_sha256_hex", 0) + 1
            continue
        rows.append((schema, text))
    _append_hashes(state_dir, rows, SUPPRESSION, name)
    added.identifiers = len({d for _, d in rows})
    record(store, actor, "privacy.suppression", f"list:{name}",
           {"type": schema, "hashes": added.identifiers, "rejected": added.rejected})  # fmt: skip
    return added


def listed(state_dir: Path) -> dict[str, int]:
    """How many identifiers and keys the workspace's list holds, by origin."""
    folder = privacy_dir(state_dir)
    out = {FORGET: 0, SUPPRESSION: 0, "keys": 0}
    if (folder / "hashes.parquet").is_file():
        table = pq.read_table(folder / "hashes.parquet", columns=["origin"])
        for origin in table.column("origin").to_pylist():
            out[origin] = out.get(origin, 0) + 1
    if (folder / "keys.parquet").is_file():
        out["keys"] = pq.read_metadata(folder / "keys.parquet").num_rows
    return out


def _append(path: Path, table: pa.Table) -> None:
    """Add rows to a small Parquet file, atomically (write a new file, then rename)."""
    if table.num_rows == 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        table = pa.concat_tables([pq.read_table(path), table])
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _append_hashes(state_dir: Path, rows: list[tuple[str, str]], origin: str, request: str) -> None:
    if not rows:
        return
    words = digest_keys(pa.array([d for _, d in rows], pa.string()))
    now = datetime.now(UTC)
    table = pa.Table.from_arrays(
        [pa.array([s for s, _ in rows], pa.string()), *words, pa.array([origin] * len(rows)),
         pa.array([request] * len(rows)), pa.array([now] * len(rows), pa.timestamp("us", tz="UTC"))],
        schema=HASHES_SCHEMA,
    )  # fmt: skip
    _append(privacy_dir(state_dir) / "hashes.parquet", table)


def _append_keys(state_dir: Path, keys: list[str], request: str) -> None:
    now = datetime.now(UTC)
    table = pa.Table.from_arrays(
        [pa.array(keys, pa.string()), pa.array([request] * len(keys), pa.string()),
         pa.array([now] * len(keys), pa.timestamp("us", tz="UTC"))],
        schema=KEYS_SCHEMA,
    )  # fmt: skip
    _append(privacy_dir(state_dir) / "keys.parquet", table)


# -- in every audience run ---------------------------------------------------------------------------------


def with_privacy(run: OrchestrationRun, specs: list[TaskSpec]) -> list[TaskSpec]:
    """The run's tasks with the workspace's list applied after `prepare` and before `plan` (audience runs
    only; nothing changes while the list is empty)."""
    if not isinstance(run, AudienceRun):
        return specs
    out = []
    for spec in specs:
        if spec.name == "prepare":
            out.append(TaskSpec(spec.name, _after(spec, run), spec.in_dry_run))
        elif spec.name == "plan":
            out.append(TaskSpec(spec.name, _before(spec, run), spec.in_dry_run))
        else:
            out.append(spec)
    return out


def _after(spec: TaskSpec, run: AudienceRun) -> Any:
    async def prepare(ctx: TaskContext) -> dict[str, Any]:
        counts = dict(await spec.run(ctx) or {})
        run_dir = run.run_dir(ctx.workflow_id)
        suppressed = await asyncio.to_thread(hash_suppression_segments, ctx.store, run.root, run_dir)
        if suppressed:
            counts["suppression_segment_ids"] = suppressed
        removed = filter_prepared(run.state_dir, run_dir / "prepared")
        if removed:
            counts["privacy_excluded_ids"] = removed
        if not (run_dir / "prepared" / "ids.parquet").is_file() and _hash_files(run.state_dir, run_dir):
            ctx.warn(
                "forget requests and suppression lists were not applied: this run's identifiers are prepared "
                "in Spark, outside ttsync; run this audience from a DuckDB or SQL source to apply them",
                serious=True,
            )
        return counts

    return prepare


def _before(spec: TaskSpec, run: AudienceRun) -> Any:
    async def plan(ctx: TaskContext) -> dict[str, Any]:
        removed = 0 if ctx.dry_run else await remove_listed(run, ctx)
        counts = dict(await spec.run(ctx) or {})
        if removed:
            counts["privacy_removed_ids"] = removed
        return counts

    return plan


def _hash_files(state_dir: Path, run_dir: Path) -> list[Path]:
    """The listed identifiers that apply to a run: the workspace's list, and the run's suppression segments."""
    files = [privacy_dir(state_dir) / "hashes.parquet", run_dir / SEGMENT_HASHES_FILE]
    return [f for f in files if f.is_file()]


def _read_hashes(files: list[Path]) -> str:
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


def filter_prepared(state_dir: Path, prepared: Path) -> int:
    """Drop the listed identifiers (and every identifier of a listed key) from a run's prepared files; the
    identifiers found through keys join the list. Returns the identifiers dropped (0: files untouched)."""
    keys = privacy_dir(state_dir) / "keys.parquet"
    hash_files = _hash_files(state_dir, prepared.parent)
    ids = prepared / "ids.parquet"
    if not ids.is_file() or not (hash_files or keys.is_file()):
        return 0
    words = ", ".join(KEY_COLUMNS)
    same = " AND ".join(f"i.{k} IS NOT DISTINCT FROM h.{k}" for k in KEY_COLUMNS)
    listed_hashes = (
        # One row per identifier: a forget request outranks a suppression list ('forget' < 'suppression').
        f"(SELECT id_schema, {words}, min(origin) AS origin FROM {_read_hashes(hash_files)} GROUP BY ALL)"
        if hash_files
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
    _append_hashes(state_dir, [(str(s), str(h)) for s, h in through_keys], FORGET, "keys")
    return hit


def _rewrite(path: Path, table: pa.Table, footer: dict[str, str]) -> None:
    """Replace a prepared file (a new file renamed over it: a committed snapshot may be a hard link to it)."""
    table = table.replace_schema_metadata(footer)
    tmp = path.with_suffix(".privacy.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


async def remove_listed(run: AudienceRun, ctx: TaskContext) -> int:
    """Delete the listed identifiers the audience still holds (its snapshot says so) from TikTok and from the
    snapshot, before the plan: no guard applies to a privacy request. Returns how many were removed."""
    run_dir = run.run_dir(ctx.workflow_id)
    hash_files = _hash_files(run.state_dir, run_dir)
    audience_id = ctx.output_of("verify_audience").get("audience_id")
    if not hash_files or not audience_id or not (run_dir / "prepared" / "ids.parquet").is_file():
        return 0  # nothing listed, no audience yet, or prepared in Spark (the plan would add them back)
    snapshot = run.snapshot_file(str(audience_id))
    if not snapshot.is_file():
        return 0
    if run.customer_file:
        held = held_in_snapshot(snapshot, _read_hashes(hash_files))
        if held:
            ctx.warn(
                f"{len(held)} identifiers of forget requests or suppression lists are in customer-file audience "
                f"{audience_id}; ttsync removes them at its next full upload (`mode: replace`) — customer-file "
                "audiences have no per-identifier delete here",
                serious=True,
            )
        return 0
    found = await delete_held(run, str(audience_id), _read_hashes(hash_files))
    if not found:
        return 0
    record(ctx.store, "ttsync", "privacy.removed", f"audience:{audience_id}",
           {"workflow_id": ctx.workflow_id, "orchestration": run.orchestration.name, "removed": len(found)})  # fmt: skip
    return len(found)


def held_in_snapshot(snapshot: Path, hashes_sql: str) -> list[tuple[str, str]]:
    """The (id schema, SHA-256 hex) pairs of `hashes_sql` (a DuckDB relation of id_schema and digest words)
    that an audience's snapshot holds."""
    if not snapshot.is_file():
        return []
    same = " AND ".join(f"s.{k} IS NOT DISTINCT FROM h.{k}" for k in KEY_COLUMNS)
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT DISTINCT id_schema, {HEX_SQL} AS hash FROM (SELECT s.* FROM {snapshot_sql(snapshot)} s "
            f"SEMI JOIN {hashes_sql} h ON s.id_schema = h.id_schema AND {same}) ORDER BY 1, 2"
        ).fetchall()
    return [(str(schema), str(digest)) for schema, digest in rows]


async def delete_held(run: AudienceRun, audience_id: str, hashes_sql: str) -> list[tuple[str, str]]:
    """Delete from a segment-API audience the identifiers of `hashes_sql` its snapshot holds, then drop them from
    the snapshot (only once TikTok accepted every delete: a crash before re-sends them). Returns the pairs."""
    snapshot = run.snapshot_file(audience_id)
    found = held_in_snapshot(snapshot, hashes_sql)
    if not found:
        return []
    by_schema: dict[str, list[str]] = {}
    for schema, digest in found:
        by_schema.setdefault(schema, []).append(digest)
    async with run.client() as client:
        for schema, digests in sorted(by_schema.items()):
            for start in range(0, len(digests), _DELETE_BATCH):
                await client.segment_mapping(
                    action="delete",
                    advertiser_ids=list(run.settings.advertiser_ids),
                    audience_ids=[audience_id],
                    id_schema=[schema],  # type: ignore[list-item]
                    rows=[[d] for d in digests[start : start + _DELETE_BATCH]],
                )
    same = " AND ".join(f"s.{k} IS NOT DISTINCT FROM h.{k}" for k in KEY_COLUMNS)
    with duckdb.connect() as con:
        kept = con.sql(
            f"SELECT * FROM {snapshot_sql(snapshot)} s ANTI JOIN {hashes_sql} h "
            f"ON s.id_schema = h.id_schema AND {same}"
        ).to_arrow_table()
    tmp = snapshot.with_suffix(".privacy.tmp")
    pq.write_table(kept, tmp)
    with contextlib.suppress(OSError), open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, snapshot)
    return found
