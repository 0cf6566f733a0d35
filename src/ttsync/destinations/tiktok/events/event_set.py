"""Step (1) of a delivery: the offline event set exists for the advertiser (`offline/get/`, ref §3.5)."""

from __future__ import annotations

from ttsync.destinations.tiktok.client import AsyncTikTokClient, NotFoundError
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings


class EventSetNotFoundError(NotFoundError):
    """The destination's event set does not exist for the advertiser (resolution `event_set_not_found`)."""


async def check_event_set(client: AsyncTikTokClient, settings: ResolvedOfflineEventsSettings) -> None:
    """Raise `EventSetNotFoundError` unless the offline event set exists for the advertiser (ref §3.5).

    Only offline event sets can be looked up with `offline/get/`; web (pixel) and CRM sources are not checked.
    """
    if settings.event_source != "offline":
        return
    endpoint = "offline/get/"
    try:
        result = await client.get_offline_event_sets(
            settings.advertiser_id, event_set_ids=[settings.event_set_id]
        )
        found = any(s.event_set_id == settings.event_set_id for s in result.event_set_list)
    except NotFoundError as exc:
        if exc.resolution_key == "advertiser_not_found":
            raise
        found = False
    if not found:
        raise EventSetNotFoundError(
            f"offline event set {settings.event_set_id} does not exist for advertiser {settings.advertiser_id}: "
            "create it in TikTok Events Manager (Assets > Events > Offline) or fix `event_set_id`",
            code=None,
            endpoint=endpoint,
            resolution_key="event_set_not_found",
        )
