"""Every resolution key the client can produce has an entry in the catalog (so no failure shows a generic one)."""

from __future__ import annotations

from ttsync.tiktok import RESOLUTION_KEYS, classify
from ttsync.workflows.resolutions import CATALOG


def test_every_client_resolution_key_is_in_the_catalog() -> None:
    missing = [key for key in RESOLUTION_KEYS if key not in CATALOG]
    assert missing == []


def test_messages_refine_codes() -> None:
    deleted = "No permission to operate advertiser 123: it has been deleted."
    assert classify(40001, deleted).resolution_key == "advertiser_not_found"
    assert (
        classify(40001, "No permission to operate pixel code: X").resolution_key
        == "missing_advertiser_permissions"
    )
    cap = "The number of custom audiences of advertiser 1 has reached the limit of 400."
    assert classify(40002, cap).resolution_key == "audience_limit_reached"
    assert classify(40002, "data.0.event_id: Not a valid string").resolution_key == "invalid_request"
