"""Removing listed identifiers from one TikTok audience now (docs/campaigns.md#suppression-and-forget-requests),
for a run before its plan (`app.privacy`) and for `ttsync forget --now` (`app.privacy_now`).

Which identifiers an audience holds is read from its snapshot (hashes only). Both kinds of audience lose them
at once, through the API that fed them:

- a partner (segment API) audience: `segment/mapping/` with action `delete`, per id schema;
- a customer-file audience: the hashes uploaded as a file (`dmp/custom_audience/file/upload/`), then
  `dmp/custom_audience/update/` with action `REMOVE` (ref §2.4 step 3). TikTok refuses it while the audience
  is still processing a change, and when the audience would hold fewer than 1,000 people afterwards: that is
  reported as such, and the snapshot keeps the identifiers (the audience still holds them).

The snapshot drops the identifiers only once TikTok accepted every call: a crash before re-sends them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.destinations.tiktok.audience.audience import MIN_USABLE_SIZE
from ttsync.destinations.tiktok.audience.customer_file_calls import calculate_type_for
from ttsync.destinations.tiktok.audience.customer_file_parts import DEFAULT_PART_ROWS, write_parts
from ttsync.destinations.tiktok.audience.customer_file_ready import wait_editable
from ttsync.destinations.tiktok.client import AsyncTikTokClient, InvalidRequestError
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.schemas import FILE_HEADERS
from ttsync.errors import ResolvableError
from ttsync.identity.digests import HEX_SQL, KEY_COLUMNS
from ttsync.sync.snapshot import snapshot_sql

_DELETE_BATCH = 10_000  # identifiers per `segment/mapping/` delete
_POLL_SECONDS = 1.0  # between looks at a customer-file audience that is still processing


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


def write_without(snapshot: Path, hashes_sql: str, out: Path) -> None:
    """Write the snapshot minus the identifiers of `hashes_sql` to `out` (atomically: temporary file, fsync,
    rename; `out` may be the snapshot itself)."""
    same = " AND ".join(f"s.{k} IS NOT DISTINCT FROM h.{k}" for k in KEY_COLUMNS)
    with duckdb.connect() as con:
        kept = con.sql(
            f"SELECT * FROM {snapshot_sql(snapshot)} s ANTI JOIN {hashes_sql} h "
            f"ON s.id_schema = h.id_schema AND {same}"
        ).to_arrow_table()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".privacy.tmp")
    pq.write_table(kept, tmp)
    with contextlib.suppress(OSError), open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, out)


async def delete_held(
    run: AudienceRun, audience_id: str, hashes_sql: str, *, ready_timeout: float | None = None
) -> list[tuple[str, str]]:
    """Remove from the audience the identifiers of `hashes_sql` its snapshot holds, then drop them from the
    snapshot. Returns the pairs removed. TikTok's refusal raises (`TikTokError`, or `ResolvableError` for a
    customer-file audience that is processing or would end under 1,000 people) and leaves the snapshot.

    `ready_timeout`: how long to wait for a customer-file audience still processing an earlier change
    (default: the run's own `ready_timeout_seconds`)."""
    snapshot = run.snapshot_file(audience_id)
    found = held_in_snapshot(snapshot, hashes_sql)
    if not found:
        return []
    by_schema: dict[str, list[str]] = {}
    for schema, digest in found:
        by_schema.setdefault(schema, []).append(digest)
    async with run.client() as client:
        for schema, digests in sorted(by_schema.items()):
            if run.customer_file:
                timeout = run.options.ready_timeout_seconds if ready_timeout is None else ready_timeout
                await _remove_from_file_audience(client, run, audience_id, schema, digests, timeout)
                continue
            for start in range(0, len(digests), _DELETE_BATCH):
                await client.segment_mapping(
                    action="delete",
                    advertiser_ids=list(run.settings.advertiser_ids),
                    audience_ids=[audience_id],
                    id_schema=[schema],  # type: ignore[list-item]
                    rows=[[d] for d in digests[start : start + _DELETE_BATCH]],
                )
    write_without(snapshot, hashes_sql, snapshot)
    return found


async def _remove_from_file_audience(
    client: AsyncTikTokClient,
    run: AudienceRun,
    audience_id: str,
    schema: str,
    digests: list[str],
    ready_timeout: float,
) -> None:
    """Upload the hashes as customer files and send one `REMOVE` update with their paths."""
    owner = run.primary_advertiser
    calculate_type = calculate_type_for(schema)
    # Hashes only; the folder goes as soon as TikTok has the files.
    with tempfile.TemporaryDirectory(prefix="ttsync-forget-") as folder, duckdb.connect() as con:
        con.register("forgotten", pa.table({"hash": pa.array(digests, pa.string())}))
        parts = write_parts(
            con,
            source_sql="SELECT hash FROM forgotten",
            header=FILE_HEADERS[calculate_type],
            out_dir=Path(folder),
            prefix="forget",
            part_rows=DEFAULT_PART_ROWS,
        )
        paths = [
            (await client.upload_audience_file(owner, calculate_type=calculate_type, file=Path(folder) / p.name))
            .file_path
            for p in parts
        ]  # fmt: skip
    await wait_editable(
        client,
        owner,
        audience_id,
        timeout_seconds=ready_timeout,
        poll_seconds=min(_POLL_SECONDS, ready_timeout),
    )
    try:
        await client.update_custom_audience(owner, audience_id, action="REMOVE", file_paths=paths)
    except InvalidRequestError as exc:
        if exc.resolution_key != "audience_not_editable":
            raise
        # The audience was editable a moment ago: TikTok's one message for "not editable" here means the
        # removal would leave it under its minimum (ref §2.4 step 3, §2.5).
        raise ResolvableError(
            f"TikTok refused to remove {len(digests):,} identifiers from customer-file audience {audience_id}: "
            f"it would hold fewer than {MIN_USABLE_SIZE:,} people afterwards, and TikTok does not update a "
            "customer-file audience below that. The identifiers stay listed and are never sent again; to "
            "remove them from TikTok, switch the destination to partner delivery (no minimum) or widen the "
            "segment, then run the audience",
            resolution_key="audience_not_editable",
        ) from exc
