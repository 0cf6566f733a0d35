"""Deliver offline events: validate and group chunk by chunk, filter against the ledger, send in batches.

    result = await deliver_events(client, batches, settings=settings, key_column="row_key",
                                  run_dir=run_dir, ledger=ledger)
    result.totals.to_dict()   # sent, duplicate_skipped, rejected by reason, ...

`plan_events` does the same without sending (`ttsync run ORCH --plan`).

Order of work: (1) check the event set exists (`offline/get/`, `event_set.py`); then, chunk by chunk as the
query's rows arrive, (2) validate the rows, (3) group them into events (`source.py` over
`ttsync.events.grouping`: an event's rows come together in the query result), (4) drop events already in the
ledger (`ledger_filter.py`), (5) send batches of up to 1,000 (a few in flight, `deliver.py`), recording each
batch in the ledger right after TikTok confirmed it. Sending starts with the first chunk: nothing is staged.
Request-level failures (auth, permission, not found, rate limit budget exhausted) stop the delivery with the
client's typed error; a 40002 about the events themselves is bisected down to the bad events (`sender.py`).

On a `spark` source, steps (2)-(4) run on Spark's executors instead (`ttsync.spark.events`): `deliver_staged`
and `plan_staged` (`plan.py`) take the events they grouped, each marked `in_ledger` or not.
"""

from __future__ import annotations

from ttsync.destinations.tiktok.events.deliver import MAX_BATCH, deliver_events, deliver_staged
from ttsync.destinations.tiktok.events.event_set import EventSetNotFoundError, check_event_set
from ttsync.destinations.tiktok.events.plan import plan_events, plan_staged
from ttsync.destinations.tiktok.events.sender import EventSender
from ttsync.destinations.tiktok.events.source import EventOptions, EventRunResult, GroupedEvents, event_rules

__all__ = [
    "MAX_BATCH",
    "EventOptions",
    "EventRunResult",
    "EventSender",
    "EventSetNotFoundError",
    "GroupedEvents",
    "check_event_set",
    "deliver_events",
    "deliver_staged",
    "event_rules",
    "plan_events",
    "plan_staged",
]
