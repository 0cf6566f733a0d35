"""Every resolution key the client can produce has an entry in the catalog (so no failure shows a generic one)."""

from __future__ import annotations

from ttsync.destinations.tiktok.client import RESOLUTION_KEYS, classify
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


def test_every_user_facing_error_is_resolvable_and_classified_by_its_key() -> None:
    # One hierarchy: the engine classifies by isinstance, so each family's default key must reach the catalog.
    from ttsync.destinations.tiktok.client.errors import TikTokError
    from ttsync.destinations.tiktok.oauth.errors import CredentialFlowError
    from ttsync.errors import ConfigError, NotFoundError, ResolvableError, WorkspaceError
    from ttsync.events.columns import EventColumnsError
    from ttsync.identity.coltypes import ColumnTypeError
    from ttsync.sources.base import SourceError
    from ttsync.workflows.errors import classify_exception

    errors: list[tuple[ResolvableError, str]] = [
        (WorkspaceError("no workspace here: run `ttsync init`"), "configuration_error"),
        (ConfigError("bad setting"), "configuration_error"),
        (NotFoundError("source", "crm"), "configuration_error"),
        (SourceError("table missing", resolution_key="source_not_found"), "source_not_found"),
        (
            TikTokError("no", code=40001, endpoint="x/", resolution_key="advertiser_not_found"),
            "advertiser_not_found",
        ),
        (CredentialFlowError("state expired"), "invalid_credentials"),
        (EventColumnsError("no event column"), "invalid_event_columns"),
        (ColumnTypeError("email is an integer column"), "configuration_error"),
    ]
    for exc, key in errors:
        assert isinstance(exc, ResolvableError)
        stored = classify_exception(exc)
        assert (stored["resolution"], stored["kind"]) == (key, type(exc).__name__)
        assert key in CATALOG
    assert classify_exception(KeyError("x"))["resolution"] == "internal_error"
