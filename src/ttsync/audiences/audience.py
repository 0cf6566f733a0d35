"""Find, verify, create and read back the TikTok audience an orchestration writes to.

Audiences are reused by their stored id, not looked up by name: TikTok allows duplicate names, so a lookup
by name could pick someone else's audience (ref §2.1). A new audience's id is stored before anything else
happens to it. Only one case needs a name: a create whose answer was lost (a timeout or dropped connection
after TikTok may have created the audience; or the process died before storing the id). Before creating,
`create_once` writes a *create intent* (the name and the ids of the advertiser's audiences already bearing
it); a later attempt with an intent first looks for an audience of that name that is not in the intent's
list, and adopts it instead of creating a second one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ttsync.errors import AudienceLimitReachedError, AudienceNotReadyError
from ttsync.tiktok import AsyncTikTokClient, InvalidRequestError, NotFoundError, RetryableError, TikTokError
from ttsync.tiktok.models.dmp import AudienceDetails, CustomAudienceSummary

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


async def audience_status(client: AsyncTikTokClient, advertiser_id: str, audience_id: str) -> AudienceStatus:
    """Read one audience with `dmp/custom_audience/get/` (ref §2.2); a deleted one reads as not existing.

    "Deleted" is decided by listing the advertiser's audiences, never by one error code: TikTok's code for an
    unknown or deleted id on `get/` is undocumented (40007 or 40002, ref §9), and a 40002 may just as well be
    about the request. An audience the list still shows is read from the list instead.
    """
    try:
        result = await client.get_custom_audiences(advertiser_id, [audience_id], history_size=1)
    except (NotFoundError, InvalidRequestError) as exc:
        if exc.resolution_key in ("advertiser_not_found", "missing_advertiser_permissions"):
            raise
        listed = await find_listed_audience(client, advertiser_id, audience_id)
        if listed is None:
            return AudienceStatus(audience_id, exists=False, is_valid=False, expired=False, cover_num=None)
        return _status(listed)
    for item in result.audiences:
        details = item.audience_details
        if details.audience_id == audience_id:
            return _status(details)
    listed = await find_listed_audience(client, advertiser_id, audience_id)
    if listed is not None:
        return _status(listed)
    return AudienceStatus(audience_id, exists=False, is_valid=False, expired=False, cover_num=None)


async def find_listed_audience(
    client: AsyncTikTokClient, advertiser_id: str, audience_id: str
) -> CustomAudienceSummary | None:
    """The audience as `dmp/custom_audience/list/` shows it (owned or shared), or None when it is not listed."""
    async for audience in client.iter_custom_audiences(advertiser_id):
        if audience.audience_id == audience_id:
            return audience
    return None


def _status(details: AudienceDetails | CustomAudienceSummary) -> AudienceStatus:
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
    # `audience_limit_reached` resolution (see `ttsync.tiktok.codes.classify`).
    created = await client.create_segment_audience(advertiser_id, name)
    if not created.audience_id:
        raise AudienceNotReadyError("TikTok created the audience but returned no audience id")
    return created.audience_id


SEGMENT_NAME_LIMIT = 70  # partner audience names above this are cut to 67 characters plus "..." (ref §2.1)


def listed_names(name: str) -> set[str]:
    """The names an audience created as `name` may be listed under (TikTok cuts long partner names)."""
    names = {name}
    if len(name) > SEGMENT_NAME_LIMIT:
        names.add(name[:67] + "...")
    return names


async def audience_ids_named(client: AsyncTikTokClient, advertiser_id: str, name: str) -> list[str]:
    """Ids of the advertiser's audiences listed under `name`, sorted."""
    names = listed_names(name)
    return sorted(
        [a.audience_id async for a in client.iter_custom_audiences(advertiser_id) if a.name in names]
    )


async def create_once(
    client: AsyncTikTokClient,
    advertiser_id: str,
    name: str,
    intent_path: Path,
    create: Callable[[], Awaitable[str]],
) -> tuple[str, bool]:
    """Create an audience at most once across lost answers and crashes; return (audience id, adopted).

    `create` makes the audience (after its own checks). The caller stores the returned id, then deletes
    `intent_path` (`clear_create_intent`)."""
    intent = _read_intent(intent_path)
    if intent is not None and intent.get("advertiser_id") == advertiser_id and intent.get("name") == name:
        adopted = await _created_since(client, advertiser_id, name, intent)
        if adopted is not None:
            return adopted, True
    else:
        intent = {
            "advertiser_id": advertiser_id,
            "name": name,
            "before": await audience_ids_named(client, advertiser_id, name),
        }
        _write_intent(intent_path, intent)
    try:
        audience_id = await create()
    except TikTokError as exc:
        if not exc.ambiguous:
            raise
        # The answer was lost after the request was sent: TikTok may have created it.
        adopted = await _created_since(client, advertiser_id, name, intent)
        if adopted is None:
            raise
        return adopted, True
    return audience_id, False


async def _created_since(
    client: AsyncTikTokClient, advertiser_id: str, name: str, intent: dict[str, object]
) -> str | None:
    before = set(intent.get("before") or [])  # type: ignore[call-overload]
    new = [a for a in await audience_ids_named(client, advertiser_id, name) if a not in before]
    return new[0] if new else None


def _read_intent(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_intent(path: Path, intent: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(intent, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def clear_create_intent(path: Path) -> None:
    """Forget the create intent once the created (or adopted) audience's id is stored."""
    path.unlink(missing_ok=True)


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
    deadline = time.monotonic() + timeout_seconds
    delay = min(poll_seconds, 0.25)
    while True:
        try:
            return await deliver()
        except RetryableError as exc:
            if exc.code != TASK_NOT_READY or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, poll_seconds)
