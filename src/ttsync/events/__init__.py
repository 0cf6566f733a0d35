"""ttsync.events: offline events from a warehouse query to TikTok's Events API 2.0 (docs/events.md).

from ttsync.events import Ledger, deliver_events, plan_events
with Ledger.open(state_dir) as ledger:
    result = await deliver_events(client, source.stream(query), settings=settings,
                                  key_column="row_key", run_dir=run_dir, ledger=ledger)
"""

from ttsync.events.columns import EventColumnsError
from ttsync.events.deliver import (
    EventOptions,
    EventRunResult,
    EventSetNotFoundError,
    ProgressCallback,
    check_event_set,
    deliver_events,
    plan_events,
)
from ttsync.events.examples import COMPLETE_PAYMENT_QUERY, example_query
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.events.outcomes import OUTCOMES_FILE, TOTALS_FILE, EventTotals
from ttsync.events.parameters import PARAMETERS, Parameter, parameter_for
from ttsync.events.reasons import Outcome, RejectReason

__all__ = [
    "COMPLETE_PAYMENT_QUERY",
    "OUTCOMES_FILE",
    "PARAMETERS",
    "TOTALS_FILE",
    "EventColumnsError",
    "EventOptions",
    "EventRunResult",
    "EventSetNotFoundError",
    "EventTotals",
    "Ledger",
    "Outcome",
    "Parameter",
    "ProgressCallback",
    "RejectReason",
    "check_event_set",
    "deliver_events",
    "example_query",
    "ledger_namespace",
    "parameter_for",
    "plan_events",
]
