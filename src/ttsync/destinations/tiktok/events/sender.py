"""One batch of offline events to `event/track/`; a 40002 about the events isolates the bad ones.

TikTok fails the whole request on the first bad event (ref §3.4). `EventSender.send` then uses the event the
message names (`data.N` or `Batch.N`) as a hint, checked rather than trusted, or bisects when no event is named,
so the good events still go and each bad one is rejected with TikTok's scrubbed message.
"""

from __future__ import annotations

import re
from typing import Final

from ttsync.destinations.tiktok.client import AsyncTikTokClient, ClientValidationError, InvalidRequestError
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.ledger import Ledger, ledger_namespace
from ttsync.events.outcomes import EventTotals, scrub_message
from ttsync.events.payload import GroupedEvent, ReadyEvents
from ttsync.events.reasons import RejectReason

# 40002 messages name the bad event as `data.N.field` (Events API 2.0) or `Batch.N.field` (ref §3.4).
_EVENT_INDEX: Final = re.compile(r"\b(?:data|batch)\.(\d+)\b", re.IGNORECASE)
# A 40002 about these request-level fields is not about any one event: bisecting would not help.
_REQUEST_FIELDS: Final = re.compile(r"\b(event_source_id|event_source|partner_name|test_event_code)\b")
_BISECT_CODES: Final = frozenset({40000, 40002, 40062})


class EventSender:
    """Sends one batch; on a 40002 about the events, isolates the bad ones and sends the rest."""

    def __init__(
        self,
        client: AsyncTikTokClient,
        settings: ResolvedOfflineEventsSettings,
        ledger: Ledger,
        run_id: str | None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.ledger = ledger
        self.run_id = run_id
        self.namespace = ledger_namespace(settings.event_set_id, settings.test_event_code)
        self.totals = EventTotals()

    async def send(self, events: ReadyEvents) -> tuple[ReadyEvents, list[tuple[GroupedEvent, str]]]:
        """Send `events`; returns (confirmed, rejected with TikTok's scrubbed message)."""
        try:
            await self._post(events)
        except InvalidRequestError as exc:
            if not _is_about_events(exc):
                raise
            return await self._isolate(events, exc)
        return events, []

    async def _post(self, events: ReadyEvents) -> None:
        self.totals.requests += 1
        await self.client.track_events_json(
            event_source=self.settings.event_source,
            event_source_id=self.settings.event_set_id,
            data_json=events.data_bytes(),
            test_event_code=self.settings.test_event_code,
            # Only a partner name the user registered with TikTok (40063 otherwise, ref §9); None omits it.
            partner_name=self.settings.partner_name,
            deduplicable=True,  # every event has an event_id (validation rejects those without)
        )
        # Only now is the batch TikTok's: record it before anything else can fail.
        keys, tails = events.ledger_keys()
        self.ledger.record_arrays(
            self.namespace,
            events.column("event"),
            events.column("event_id"),
            keys=keys,
            tails=tails,
            run_id=self.run_id,
        )
        self.totals.sent += len(events)

    async def _isolate(
        self, events: ReadyEvents, exc: InvalidRequestError
    ) -> tuple[ReadyEvents, list[tuple[GroupedEvent, str]]]:
        message = scrub_message(exc.message)
        if len(events) == 1:
            self._reject(1)
            return ReadyEvents.empty(), [(events.event(0), message)]
        index = _event_index(exc.message)
        if index is not None and index < len(events):
            # TikTok named an event (`data.N` or `Batch.N`): a hint, checked rather than trusted, since the
            # format of these messages varies and some name no event at all (ref §3.4, §9). Send the others
            # first (they may hold more bad ones): if they all go, the named event alone failed the batch;
            # if not, the named event is sent alone to decide it.
            confirmed, rejected = await self.send(events.without(index))
            if not rejected:
                self._reject(1)
                return confirmed, [(events.event(index), message)]
            alone_ok, alone_bad = await self.send(events.slice(index, index + 1))
            return ReadyEvents.concat([confirmed, alone_ok]), [*alone_bad, *rejected]
        # No usable index (e.g. "Invalid value for event_id: ..." names only the field): bisect.
        middle = len(events) // 2
        left_ok, left_bad = await self.send(events.slice(0, middle))
        right_ok, right_bad = await self.send(events.slice(middle))
        return ReadyEvents.concat([left_ok, right_ok]), left_bad + right_bad

    def _reject(self, count: int) -> None:
        self.totals.rejected[RejectReason.REJECTED_BY_TIKTOK.value] += count


def _is_about_events(exc: InvalidRequestError) -> bool:
    if isinstance(exc, ClientValidationError):
        return _event_index(exc.message) is not None
    if exc.code not in _BISECT_CODES:
        return False
    return _event_index(exc.message) is not None or _REQUEST_FIELDS.search(exc.message) is None


def _event_index(message: str) -> int | None:
    match = _EVENT_INDEX.search(message)
    return int(match.group(1)) if match else None
