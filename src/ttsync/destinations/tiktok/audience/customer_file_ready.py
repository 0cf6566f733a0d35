"""Waiting until a customer-file audience can be edited, and telling "still processing" from "stuck at size 0".

TikTok processes a customer-file change for minutes to hours and refuses another change meanwhile; an
audience created with fewer than 1,000 matched people stays at size 0 and can never be edited (ref §2.5).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from ttsync.destinations.tiktok.audience.audience import (
    MIN_USABLE_SIZE,
    AudienceView,
    lookup_audience,
)
from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.errors import ResolvableError
from ttsync.sync.polling import Backoff


async def wait_editable(
    client: AsyncTikTokClient,
    owner: str,
    audience_id: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    held: int | None = None,
) -> None:
    """Poll until the audience is valid; a processing one past the timeout gives `replace_in_progress`."""
    backoff = Backoff(timeout_seconds=timeout_seconds, poll_seconds=poll_seconds)
    while True:
        details = await lookup_audience(client, owner, audience_id)
        if details is None:
            raise ResolvableError(
                f"audience {audience_id} no longer exists in TikTok; restart the workflow so ttsync creates "
                "a new one and uploads everyone",
                resolution_key="audience_not_editable",
            )
        if details.is_valid:
            return
        if landed_at_zero(details, held=held):
            raise too_small(audience_id, details)
        if not processing(details):
            raise ResolvableError(
                f"customer-file audience {audience_id} cannot be edited: {details.error_msg} TikTok keeps "
                f"an audience that was created with fewer than {MIN_USABLE_SIZE:,} people at size 0. Widen "
                "the segment and use mode 'create' for a new audience, or switch to partner delivery",
                resolution_key="audience_not_editable",
            )
        if backoff.expired:
            raise in_progress(audience_id)
        await backoff.wait()


# TikTok builds a customer-file audience within 24-48 hours (ref §2.5, HELP): still at size 0 after that, it
# did not reach 1,000 matched people.
BUILD_WINDOW_SECONDS: Final = 48 * 3600


def landed_at_zero(details: AudienceView, *, held: int | None, now: datetime | None = None) -> bool:
    """True when an invalid audience at size 0 *without* an error message has landed at 0 for good.

    TikTok's `error_msg` for this may be null (Segment's fixture, ref §9), which alone reads like "still
    processing" forever. So it is concluded from size and time: TikTok holds fewer than 1,000 identifiers by
    ttsync's own snapshot (`held`), or the audience is still at 0 after TikTok's 24-48 hour build window.
    """
    if details.is_valid or (details.error_msg or "").strip() or details.cover_num not in (0, None):
        return False
    if held is not None and held < MIN_USABLE_SIZE:
        return True
    created = _parse_time(details.create_time)
    if created is None:
        return False
    return ((now or datetime.now(UTC)) - created).total_seconds() >= BUILD_WINDOW_SECONDS


def _parse_time(text: str | None) -> datetime | None:
    """TikTok's `YYYY-MM-DD HH:MM:SS` (UTC, ref §2.1), or None."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def too_small(audience_id: str, details: AudienceView) -> ResolvableError:
    """The error of an audience that landed at size 0 (`audience_not_editable`), saying how to get out."""
    return ResolvableError(
        f"customer-file audience {audience_id} is at size 0 and TikTok gives no reason: it was left with fewer "
        f"than {MIN_USABLE_SIZE:,} matched people (a small segment, or identifiers TikTok could not match), and "
        "TikTok does not update such an audience. Widen the segment (check the match report with `ttsync run "
        "ORCHESTRATION --plan`), then use mode 'create' for a new audience or switch to partner delivery",
        resolution_key="audience_too_small",
    )


def processing(details: AudienceView) -> bool:
    """True while TikTok is still processing the audience's last change."""
    # Invalid without an error message: still processing (or expired, which the caller's verify step
    # checks before every delivery). An audience that landed at size 0 carries an error message.
    return not details.is_valid and not (details.error_msg or "").strip()


def in_progress(audience_id: str) -> ResolvableError:
    """The error of an audience still processing past the wait (`replace_in_progress`): retry later."""
    return ResolvableError(
        f"customer-file audience {audience_id} is still processing an earlier change in TikTok (this can "
        "take hours for large files); ttsync continues where it stopped when the workflow is retried",
        resolution_key="replace_in_progress",
    )
