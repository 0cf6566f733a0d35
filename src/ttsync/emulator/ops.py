"""State operations shared by API handlers and the admin API."""

from __future__ import annotations

from ttsync.emulator.errors import PARAM_ERROR, ApiError
from ttsync.emulator.model import Audience, State

YEAR = 365 * 86_400.0


def live_audience_count(state: State, advertiser_id: str) -> int:
    """Audiences an advertiser owns that count against the cap (not deleted)."""
    return sum(1 for a in state.audiences.values() if a.owner_id == advertiser_id and not a.deleted)


def create_audience(
    state: State,
    owner_id: str,
    name: str,
    audience_type: str,
    calculate_type: str,
    now: float,
    *,
    retention_in_days: int | None = None,
    sub_type: str = "NORMAL",
) -> Audience:
    """Create an audience, enforcing the per-advertiser cap.

    The cap (400, ref §2.5) is enforced with code 40002 and an explicit message: the reference does not say
    which code TikTok uses (ref §9), and 40002 is its generic "parameter error".
    """
    cap = state.config.audience_cap
    if live_audience_count(state, owner_id) >= cap:
        raise ApiError(
            PARAM_ERROR,
            f"The number of custom audiences of advertiser {owner_id} has reached the limit of {cap}. "
            "Delete unused audiences before creating new ones.",
        )
    lifetime = retention_in_days * 86_400.0 if retention_in_days else YEAR
    aud = Audience(
        audience_id=state.ids.numeric(),
        name=name,
        owner_id=owner_id,
        audience_type=audience_type,
        calculate_type=calculate_type,
        created_at=now,
        ready_at=now + state.config.processing_delay,
        expires_at=now + lifetime,
        sub_type=sub_type,
        retention_in_days=retention_in_days,
    )
    aud.history.append(_history("create", now))
    state.audiences[aud.audience_id] = aud
    state.touch()
    return aud


def _history(action: str, now: float, detail: str = "") -> dict[str, object]:
    return {"action": action, "action_detail": detail, "editor": "open_api", "msg": "", "opt_time": now}


def record_history(aud: Audience, action: str, now: float, detail: str = "") -> None:
    """Append to ``audience_history`` (ref §2.1)."""
    aud.history.append(_history(action, now, detail))


def delete_audience(state: State, aud: Audience, now: float) -> None:
    """Mark an audience deleted and drop its members."""
    aud.deleted = True
    record_history(aud, "delete", now)
    state.clear_members(aud)
    state.touch()
