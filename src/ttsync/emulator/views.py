"""JSON shapes of audiences as the DMP read endpoints return them (ref §2.1, §2.2)."""

from __future__ import annotations

from typing import Any

from ttsync.emulator.clock import format_time
from ttsync.emulator.model import PARTNER, Audience

EXPIRING_WINDOW = 60 * 86_400.0  # is_expiring: within 60 days of expiry (ref §2.2)


def is_ready(aud: Audience, now: float) -> bool:
    """Processing finished (the configurable delay after create/update has passed)."""
    return now >= aud.ready_at


def is_expired(aud: Audience, now: float) -> bool:
    """Past its expiry time."""
    return now >= aud.expires_at


def cover_num(aud: Audience, now: float) -> int:
    """Size shown by TikTok: 0 while processing, and 0 for a customer-file audience below 1,000 (ref §2.5)."""
    if not is_ready(aud, now) or aud.landed_at_zero:
        return 0
    return aud.member_count()


def audience_details(
    aud: Audience, viewer_id: str, now: float, *, null_zero_error: bool = False
) -> dict[str, Any]:
    """``audience_details`` / list item for the advertiser ``viewer_id``.

    ``null_zero_error`` (variant ``file-zero-null-error``): a customer-file audience that landed at size 0
    reads ``error_msg: null``, as in Segment's fixture (ref §9), instead of an explanation.
    """
    is_creator = aud.owner_id == viewer_id
    shared = bool(aud.shared_with) if is_creator else True
    valid = is_ready(aud, now) and not is_expired(aud, now) and not aud.landed_at_zero
    if aud.audience_type == PARTNER and not aud.members_any():
        # An empty partner audience reads is_valid false, cover_num 0: a captured get/ response a day after
        # creation in Segment's tiktok-audiences tests (ref §9). TikTok validates once members arrive.
        valid = False
    zero_error: str | None = None if null_zero_error else "Audience size is below 1,000; it cannot be edited."
    return {
        "audience_id": aud.audience_id,
        "name": aud.name,
        "type": aud.audience_type,
        "audience_type": aud.audience_type,
        "audience_sub_type": aud.sub_type,
        "calculate_type": aud.calculate_type,
        "cover_num": cover_num(aud, now),
        "create_time": format_time(aud.created_at),
        "expired_time": format_time(aud.expires_at),
        "is_creator": is_creator,
        "is_expiring": (aud.expires_at - now) <= EXPIRING_WINDOW,
        "is_valid": valid,
        "is_auto_refresh": False,
        "owner_id": aud.owner_id,
        "shared": shared,
        "msg": "",
        "error_msg": zero_error if aud.landed_at_zero else "",
        "rule": "",
        "lookalike_spec": aud.lookalike_spec,
        "audience_enhancement": False,
        "enhancement_status": "",
    }
