"""`ttsync segments preview`: a segment's size, identifier coverage, match-quality estimate and rejection
reasons, counts only (never a value)."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from ttsync.app.workspace.layout import Workspace
from ttsync.errors import ConfigError
from ttsync.identity.prepare import Preparer
from ttsync.identity.report import MatchReport
from ttsync.sources import open_source
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.sync.columns import USER_ID_KINDS, audience_column_specs

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
        if specs:
            with Preparer(specs, key_column=segment.key_column) as preparer:
                for batch in source.stream(segment.query):
                    size += batch.num_rows
                    ids = preparer.process(batch).ids
                    for kind in people_by_type:  # people with at least one usable identifier of the type
                        of_type = ids.filter(pc.starts_with(ids.column("id_schema"), kind + "_"))
                        people_by_type[kind] += pc.count_distinct(of_type.column("row_key")).as_py()
                report = preparer.report()
        else:
            size = sum(batch.num_rows for batch in source.stream(segment.query))
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
        "rejections": rejections[:_REJECTION_SAMPLE],
        "rejection_reasons": len(rejections),
        "warnings": warnings,
    }
