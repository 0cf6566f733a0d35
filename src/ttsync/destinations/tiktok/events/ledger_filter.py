"""Step (4) of a delivery: record the events grouping rejected, and drop those the ledger holds already."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.events.ledger import Ledger, event_keys, pair_tails
from ttsync.events.outcomes import EventTotals, OutcomeWriter
from ttsync.events.payload import ReadyEvents, split_events
from ttsync.events.reasons import Outcome


def filter_chunk(
    batch: pa.RecordBatch,
    totals: EventTotals,
    writer: OutcomeWriter,
    ledger: Ledger,
    namespace: str,
) -> ReadyEvents:
    """Record rejected events; drop events already in the ledger; return the events to send.

    Events marked `in_ledger` (Spark's anti-join) are skipped without a lookup; the others are looked up (a
    run that recorded them since Spark read the ledger is caught here)."""
    ready, rejected = split_events(batch)
    totals.events += len(ready) + sum(rejected.counts.values())
    totals.rejected.update(rejected.counts)
    writer.add_arrow(rejected.row_keys, Outcome.REJECTED, reasons=rejected.reasons)
    if not len(ready):
        return ready
    marked = None
    if "in_ledger" in batch.schema.names:
        marked = pc.fill_null(batch.filter(pc.is_null(batch.column("reason"))).column("in_ledger"), False)
    # The ledger keys are computed once: for the lookup here, and (attached) for the record after sending.
    # Events marked already need no lookup; the others are looked up, and the mask put back in place.
    events, ids = ready.column("event"), ready.column("event_id")
    tails = pair_tails(events, ids)
    keys = event_keys(namespace, events, ids, tails)
    ready = ready.with_ledger_keys(keys, tails)
    found = np.zeros(len(ready), dtype=bool)
    unknown = np.ones(len(ready), dtype=bool) if marked is None else ~marked.to_numpy(zero_copy_only=False)
    if unknown.all():
        found = ledger.seen(namespace, events, ids, keys)
    elif unknown.any():
        keep = pa.array(unknown)
        found[unknown] = ledger.seen(namespace, events.filter(keep), ids.filter(keep), keys[unknown])
    if marked is not None:
        found |= ~unknown
    if not found.any():
        return ready
    seen = pa.array(found)
    skipped = ready.filter(seen)
    writer.add_arrow(skipped.row_keys(), Outcome.DUPLICATE_SKIPPED, events=skipped.row_events())
    totals.duplicate_skipped += len(skipped)
    return ready.filter(pc.invert(seen))
