"""`ttsync segments preview`: a segment's size, identifier coverage, match-quality estimate and rejection
reasons, counts only (never a value)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.app.privacy_prepared import filter_preview, list_applies
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import Segment
from ttsync.errors import ConfigError
from ttsync.identity import ColumnSpec
from ttsync.identity.prepare import Preparer
from ttsync.identity.report import MatchReport
from ttsync.identity.rowkeys import KeyHasher
from ttsync.sources import open_source
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.sync.columns import USER_ID_KINDS, audience_column_specs
from ttsync.sync.prepare import IDS_SCHEMA, ROW_KEY_FIELD, _with_string_key, ids_batch
from ttsync.writeback.rowkey import workspace_hasher

_REJECTION_SAMPLE = 10  # reason codes shown by `segments preview`, the most frequent first


def preview_segment(
    workspace: Workspace, store: Store, name: str, *, region: str | None = None
) -> dict[str, Any]:
    """`ttsync segments preview`: the segment's size, identifier coverage per type, a match-quality estimate
    and its most frequent rejection reasons with counts. Counts and reason codes only, never a value.

    Identifier columns are found by name (email, phone, idfa, aaid; `country` as the phones' region), as an
    orchestration without an attribute mapping finds them; `region`: the phones' default region."""
    segment = repos.get_segment(store, name)
    warnings: list[str] = []
    with open_source(repos.get_source(store, segment.source), workspace.root) as source:
        columns = source.columns(segment.query)
        if segment.key_column not in columns:
            raise ConfigError(
                f"segment {name!r}: its query returns no key column {segment.key_column!r} (it returns "
                f"{', '.join(columns)}); return it or fix `key_column`"
            )
        try:
            specs = audience_column_specs(
                user_id_types=list(USER_ID_KINDS), mapping={}, columns=columns, default_region=region
            )
        except ConfigError:
            specs = []
            warnings.append(
                "the segment returns no identifier column (email, phone, idfa or aaid): a campaign sends "
                "nobody from it to TikTok"
            )
        size, people_by_type = 0, dict.fromkeys((s.kind.upper() for s in specs), 0)
        report = MatchReport()
        # Forget requests and suppression apply as in a run: the identifiers are written (hashes and stored
        # row keys, as a run's prepared file) to a temporary folder and filtered there.
        listed = bool(specs) and list_applies(workspace.state_dir, store)
        kept = Path(tempfile.mkdtemp(prefix="ttsync-preview-")) if listed else None
        try:
            if specs:
                size, report = _prepare(source, segment, specs, people_by_type, kept, workspace_hasher(store))
            else:
                size = sum(batch.num_rows for batch in source.stream(segment.query))
            suppressed = _suppress(workspace, store, kept, people_by_type, report) if kept else None
        finally:
            if kept is not None:
                shutil.rmtree(kept, ignore_errors=True)
    counted = sorted(
        (
            (count, t.id_schema.split("_")[0], reason)
            for t in report.types
            for reason, count in t.rejected.items()
        ),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    rejections = [{"type": kind, "reason": reason, "count": n} for n, kind, reason in counted]
    coverage = {}
    for t in report.types:
        kind = t.id_schema.split("_")[0]
        people = people_by_type.get(kind, 0)
        coverage[kind] = {
            "columns": t.columns,
            "present": t.present,
            "valid": t.valid,
            "rejected": sum(t.rejected.values()),
            "people": people,  # people with at least one usable identifier of this type
            "share_of_people": round(people / size, 4) if size else 0.0,
        }
    if 0 < size < 1000:
        warnings.append(f"{size} people: TikTok needs at least 1,000 in an audience to target it")
    share = report.people_matchable / size if size else 0.0
    return {
        "segment": name,
        "source": segment.source,
        "size": size,
        "coverage": coverage,
        "match_quality": {
            "people_matchable": report.people_matchable,
            "share_matchable": round(share, 4),
            # An upper bound on TikTok's match rate: it matches a share of the usable identifiers only.
            "estimate": "good" if share >= 0.8 else "fair" if share >= 0.5 else "poor",
        },
        # Forget requests and suppression lists (identifiers left out, people left with none).
        "suppressed": suppressed or {"identifiers": 0, "people": 0},
        "rejections": rejections[:_REJECTION_SAMPLE],
        "rejection_reasons": len(rejections),
        "warnings": warnings,
    }


def _prepare(
    source: Any,
    segment: Segment,
    specs: list[ColumnSpec],
    people_by_type: dict[str, int],
    kept: Path | None,
    hasher: KeyHasher,
) -> tuple[int, MatchReport]:
    """Run the identity rules over the segment, counting people per identifier type; with `kept`, also write
    the identifiers as a run's `prepared/ids.parquet` there (row keys in their stored form)."""
    size = 0
    writer = None
    if kept is not None:
        (kept / "prepared").mkdir(parents=True)
        writer = pq.ParquetWriter(kept / "prepared" / "ids.parquet", IDS_SCHEMA)
    key_column = ROW_KEY_FIELD if kept is not None else segment.key_column

    def keyed() -> Iterator[pa.RecordBatch]:
        nonlocal size
        for batch in source.stream(segment.query):
            first_row, size = size, size + batch.num_rows
            if writer is not None:  # the run's row keys: forgotten keys match them
                batch, _missing = _with_string_key(batch, segment.key_column, hasher, first_row=first_row)
            yield batch

    try:
        with Preparer(specs, key_column=key_column) as preparer:
            # The next batch's chunks run while this one's identifiers are written or counted.
            for prepared in preparer.process_stream(keyed()):
                ids = prepared.ids
                if writer is not None:
                    writer.write_batch(ids_batch(ids))
                    continue  # counted once filtered (`_suppress`)
                for kind in people_by_type:  # people with at least one usable identifier of the type
                    of_type = ids.filter(pc.starts_with(ids.column("id_schema"), kind + "_"))
                    people_by_type[kind] += pc.count_distinct(of_type.column("row_key")).as_py()
            report = preparer.report()
    finally:
        if writer is not None:
            writer.close()
    return size, report


def _suppress(
    workspace: Workspace, store: Store, kept: Path, people_by_type: dict[str, int], report: MatchReport
) -> dict[str, int]:
    """Apply the privacy step to the written identifiers; count people per type (and matchable) after it."""
    ids = f"read_parquet({sql_literal(kept / 'prepared' / 'ids.parquet')})"
    before = _people(ids)
    dropped = filter_preview(store, workspace.root, workspace.state_dir, kept)
    for kind in people_by_type:
        people_by_type[kind] = _people(ids, kind)
    report.people_matchable = _people(ids)
    return {"identifiers": dropped, "people": before - report.people_matchable}


def _people(ids_sql: str, kind: str | None = None) -> int:
    """Distinct row keys of a prepared file (with an identifier of `kind`, e.g. EMAIL, when given)."""
    where = f"WHERE starts_with(id_schema, {sql_literal(kind + '_')})" if kind else ""
    with duckdb.connect() as con:
        row = con.execute(f"SELECT count(DISTINCT row_key) FROM {ids_sql} {where}").fetchone()
    return int(row[0]) if row else 0
