"""`POST dmp/custom_audience/lookalike/create/`: a lookalike of an existing audience (ref §2.x Lookalike
audiences; official SDK `LookalikeCreateBody`, `DmpcustomAudiencelookalikecreateLookalikeSpec`).

What the sources say is validated as they say it: `advertiser_id`, `custom_audience_name` (≤ 128) and
`lookalike_spec` required; `audience_sub_type` NORMAL (default) or REACH_FREQUENCY; the source at least 100
people and never a lookalike; `audience_size` NARROW/BALANCED/BROAD; `mobile_os` ALL/ANDROID/IOS; the
placement enum. The sources give no error codes for the source rules, so they answer 40002 (TikTok's
"parameter error") with an explicit message, as the audience cap does. The lookalike itself is calculated by
TikTok from data the emulator does not have: it is created empty and valid once its processing delay passed.
"""

from __future__ import annotations

from typing import Any, Final

from ttsync.emulator.endpoints.common import Ctx, JsonDict, advertiser_access, endpoint
from ttsync.emulator.errors import NOT_FOUND, ApiError, param_error
from ttsync.emulator.model import LOOKALIKE
from ttsync.emulator.ops import create_audience
from ttsync.emulator.validate import MISSING, one_of, opt_bool, opt_str, req_str, str_list

MIN_SOURCE: Final = 100  # people in the source audience (SDK LookalikeSpec.source_audience_id)
AUDIENCE_SIZES: Final = ("NARROW", "BALANCED", "BROAD")
MOBILE_OS: Final = ("ALL", "ANDROID", "IOS")
PLACEMENTS: Final = ("TikTok", "TopBuzz & BuzzVideo", "Pangle")  # SDK enum (ref: e.g. TikTok, Pangle)
_SPEC = "lookalike_spec"
_IN_SPEC = _SPEC + "."  # the prefix of its fields in error messages


@endpoint("dmp/custom_audience/lookalike/create/", "POST")
def lookalike_create(ctx: Ctx) -> JsonDict:
    """Create a lookalike audience of `lookalike_spec.source_audience_id`; answers its id."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    name = req_str(p, "custom_audience_name")
    if not 1 <= len(name) <= 128:
        raise param_error("custom_audience_name", "Length must be between 1 and 128")
    sub_type = one_of(
        opt_str(p, "audience_sub_type") or "NORMAL", ("NORMAL", "REACH_FREQUENCY"), "audience_sub_type"
    )
    spec = p.get(_SPEC)
    if spec is None:
        raise param_error(_SPEC, MISSING)
    if not isinstance(spec, dict):
        raise param_error(_SPEC, "Not a valid object")
    source_id = req_str(spec, "source_audience_id", _IN_SPEC)
    locations = str_list(spec, "location_ids", 1, 1_000, _IN_SPEC, required=False)
    size = opt_str(spec, "audience_size", _IN_SPEC)
    os_ = opt_str(spec, "mobile_os", _IN_SPEC)
    placements = str_list(spec, "placements", 1, len(PLACEMENTS), _IN_SPEC, required=False)
    normalized: dict[str, Any] = {
        "source_audience_id": source_id,
        "location_ids": locations,
        "audience_size": one_of(size, AUDIENCE_SIZES, f"{_SPEC}.audience_size") if size else None,
        "include_source": opt_bool(spec, "include_source", False),
        "mobile_os": one_of(os_, MOBILE_OS, f"{_SPEC}.mobile_os") if os_ else None,
        "placements": [one_of(x, PLACEMENTS, f"{_SPEC}.placements.{i}") for i, x in enumerate(placements)],
    }
    source = ctx.state.audiences.get(source_id)
    visible = (
        source is not None
        and not source.deleted
        and (source.owner_id == adv.advertiser_id or adv.advertiser_id in source.shared_with)
    )
    if source is None or not visible:
        raise ApiError(
            NOT_FOUND, f"Custom audience {source_id} does not exist for advertiser {adv.advertiser_id}."
        )
    if source.audience_type == LOOKALIKE:
        raise param_error(f"{_SPEC}.source_audience_id", "The source audience cannot be a lookalike audience")
    if source.member_count() < MIN_SOURCE:
        raise param_error(
            f"{_SPEC}.source_audience_id",
            f"The size of the source audience should be no less than {MIN_SOURCE}",
        )
    aud = create_audience(ctx.state, adv.advertiser_id, name, LOOKALIKE, "", ctx.now, sub_type=sub_type)
    aud.lookalike_spec = normalized
    return {"custom_audience_id": aud.audience_id}
