"""ttsync.events: the neutral part of offline events (docs/events.md): parameters, validation, grouping, the
ledger and outcomes. Sending them to TikTok's Events API 2.0 is `ttsync.destinations.tiktok.events`:

from ttsync.destinations.tiktok.events import deliver_events, plan_events
from ttsync.events import Ledger
with Ledger.open(state_dir) as ledger:
    result = await deliver_events(client, source.stream(query), settings=settings,
                                  key_column="row_key", run_dir=run_dir, ledger=ledger)
"""

from ttsync.events.columns import EventColumnsError
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
    "EventTotals",
    "Ledger",
    "Outcome",
    "Parameter",
    "RejectReason",
    "example_query",
    "ledger_namespace",
    "parameter_for",
]
