"""Find, verify, create and read back the TikTok audience an orchestration writes to.

Audiences are reused by their stored id, never looked up by name: TikTok allows duplicate names, so a lookup
by name could pick someone else's audience (ref §2.1). A new audience's id is stored before anything else
happens to it, so a crash right after creating it never leads to a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ttsync.destinations.tiktok.client import (
    AsyncTikTokClient,
    InvalidRequestError,
    NotFoundError,
    RetryableError,
)
from ttsync.destinations.tiktok.client.models.dmp import AudienceDetails, CustomAudienceSummary
from ttsync.errors import AudienceLimitReachedError, AudienceNotReadyError
from ttsync.sync.polling import Backoff

AUDIENCE_CAP = 400  # custom audiences per advertiser (ref §2.5)
# What a not-yet-valid audience reports after delivery: a state, not a failure. TikTok validates a partner
# audience only after members arrive, and matching can take up to ~10 hours (ref §9, Amperity).
PROCESSING_STATE = "processing (TikTok can take up to ~10 h to match members)"
TASK_NOT_READY = 40201  # "task not ready": a brand-new audience that does not accept mappings yet (ref §5.1)
MIN_USABLE_SIZE = 1_000  # people an audience needs before an ad group can use it (ref §2.5)


@dataclass(frozen=True)
class AudienceStatus:
    """What TikTok says of one audience right now."""

    audience_id: str
    exists: bool
    is_valid: bool
    expired: bool
    cover_num: int | None
    name: str = ""

    @property
    def usable(self) -> bool:
        """Exists and has not expired (it may still be processing)."""
        return self.exists and not self.expired


AudienceView = (
    AudienceDetails | CustomAudienceSummary
)  # what `get/` or, failing it, `list/` says of one audience


async def lookup_audience(
    client: AsyncTikTokClient, advertiser_id: str, audience_id: str
) -> AudienceView | None:
    """Read one audience with `dmp/custom_audience/get/` (ref §2.2); None when it was deleted.

    "Deleted" is decided by listing the advertiser's audiences, never by one error code: TikTok's code for an
    unknown or deleted id on `get/` is undocumented (40007 or 40002, ref §9), and a 40002 may just as well be
    about the request. An audience the list still shows is read from the list instead. The one lookup of
    every audience task (status checks, read-back, customer-file waits).
    """
    try:
        result = await client.get_custom_audiences(advertiser_id, [audience_id], history_size=1)
    except (NotFoundError, InvalidRequestError) as exc:
        if exc.resolution_key in ("advertiser_not_found", "missing_advertiser_permissions"):
            raise
        return await find_listed_audience(client, advertiser_id, audience_id)
    for item in result.audiences:
        details = item.audience_details
        if details.audience_id == audience_id:
            return details
    return await find_listed_audience(client, advertiser_id, audience_id)


async def audience_status(client: AsyncTikTokClient, advertiser_id: str, audience_id: str) -> AudienceStatus:
    """What TikTok says of one audience right now (`lookup_audience`); a deleted one reads as not existing."""
    found = await lookup_audience(client, advertiser_id, audience_id)
    if found is None:
        return AudienceStatus(audience_id, exists=False, is_valid=False, expired=False, cover_num=None)
    return _status(found)


async def find_listed_audience(
    client: AsyncTikTokClient, advertiser_id: str, audience_id: str
) -> CustomAudienceSummary | None:
    """The audience as `dmp/custom_audience/list/` shows it (owned or shared), or None when it is not listed."""
    async for audience in client.iter_custom_audiences(advertiser_id):
        if audience.audience_id == audience_id:
            return audience
    return None


def _status(details: AudienceView) -> AudienceStatus:
    # TikTok reports no explicit "expired" flag: an expired audience is invalid and inside (past) its
    # expiry window, whereas a processing one is invalid but far from expiry (ref §2.2 is_valid/is_expiring).
    expired = not details.is_valid and bool(details.is_expiring)
    return AudienceStatus(
        audience_id=details.audience_id,
        exists=True,
        is_valid=bool(details.is_valid),
        expired=expired,
        cover_num=details.cover_num,
        name=details.name,
    )


async def audience_count(client: AsyncTikTokClient, advertiser_id: str) -> int:
    """How many custom audiences the advertiser has (from the list's page_info)."""
    page = await client.list_custom_audiences(advertiser_id, page=1, page_size=1)
    return page.page_info.total_number or len(page.audiences)


async def create_partner_audience(client: AsyncTikTokClient, advertiser_id: str, name: str) -> str:
    """Create a partner audience after checking the 400-audience cap; returns its id."""
    if await audience_count(client, advertiser_id) >= AUDIENCE_CAP:
        raise AudienceLimitReachedError(
            f"advertiser {advertiser_id} already has {AUDIENCE_CAP} custom audiences; delete unused ones in "
            "TikTok Ads Manager before ttsync can create another"
        )
    # If the cap is reached between the check and the create, the client's error already carries the
    # `audience_limit_reached` resolution (see `ttsync.destinations.tiktok.client.codes.classify`).
    created = await client.create_segment_audience(advertiser_id, name)
    if not created.audience_id:
        raise AudienceNotReadyError("TikTok created the audience but returned no audience id")
    return created.audience_id


async def share_audience(
    client: AsyncTikTokClient, owner_id: str, audience_id: str, advertiser_ids: Sequence[str]
) -> None:
    """Share the audience with the other advertisers of the destination (same business center, ref §2.3)."""
    others = [a for a in advertiser_ids if a != owner_id]
    for start in range(0, len(others), 10):  # share takes at most 10 advertisers per call
        await client.share_custom_audiences(owner_id, [audience_id], others[start : start + 10])


T = TypeVar("T")


async def deliver_until_ready(
    deliver: Callable[[], Awaitable[T]], *, timeout_seconds: float, poll_seconds: float = 5.0
) -> T:
    """Run a checkpointed delivery; while a new audience answers "not ready" (40201), run it again.

    Mappings are sent right after create rather than after polling `is_valid`, which stays false for an
    empty partner audience (ref §9). TikTok may still refuse the first mappings for a minute or two (SEG's
    history, ref §7); each new attempt resumes from the delivery's checkpoint, until `timeout_seconds`.
    """
    backoff = Backoff(timeout_seconds=timeout_seconds, poll_seconds=poll_seconds)
    while True:
        try:
            return await deliver()
        except RetryableError as exc:
            if exc.code != TASK_NOT_READY or backoff.expired:
                raise
        await backoff.wait()
