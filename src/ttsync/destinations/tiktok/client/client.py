"""`AsyncTikTokClient`: one typed coroutine per TikTok Business API v1.3 endpoint ttsync uses.

OAuth and the Events API live here; the Segment API is in `_segment.py` and the DMP custom audience
endpoints in `_dmp.py`, mixed in (each on `BaseAsyncClient`, the shared request plumbing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from ttsync.destinations.tiktok.client._core import CallSpec, build_request
from ttsync.destinations.tiktok.client._dmp import CustomAudienceMethods
from ttsync.destinations.tiktok.client._segment import SegmentMethods
from ttsync.destinations.tiktok.client.errors import ClientValidationError
from ttsync.destinations.tiktok.client.models.events import (
    EventSource,
    EventTrackRequest,
    EventTrackResult,
    OfflineCreateRequest,
    OfflineCreateResult,
    OfflineGetRequest,
    OfflineGetResult,
    TrackEvent,
)
from ttsync.destinations.tiktok.client.models.oauth import (
    AccessTokenRequest,
    AccessTokenResult,
    AdvertiserGetRequest,
    AdvertiserListResult,
    RefreshTokenRequest,
    RefreshTokenResult,
    RevokeTokenRequest,
    RevokeTokenResult,
)


class AsyncTikTokClient(SegmentMethods, CustomAudienceMethods):
    """Async TikTok Business API client.

    Construct with the credential (access token; app id and secret for the OAuth endpoints), optionally a
    `base_url` (the emulator's `.../open_api/v1.3/`) and an httpx2 `transport` (the test seam). Requests are
    paced by a shared per-app limiter, bounded by `max_concurrency`, retried per `RetryPolicy`, and every
    failure raises a `TikTokError` subclass. Use as `async with AsyncTikTokClient(...) as client:`.
    """

    async def __aenter__(self) -> AsyncTikTokClient:
        return self

    # -- OAuth (ref §4) ------------------------------------------------------------------------------------

    async def get_access_token(self, auth_code: str | SecretStr) -> AccessTokenResult:
        """`POST oauth2/access_token/`: exchange a single-use auth code for a long-lived token."""
        path = "oauth2/access_token/"
        app_id, secret = self._require_app(path)
        body = build_request(AccessTokenRequest, path, app_id=app_id, secret=secret, auth_code=auth_code)
        spec = CallSpec("POST", path, body=body, auth=False, idempotent=False)
        return await self._call(spec, AccessTokenResult)

    async def get_authorized_advertisers(self) -> AdvertiserListResult:
        """`GET oauth2/advertiser/get/`: the advertisers this token reaches."""
        path = "oauth2/advertiser/get/"
        app_id, secret = self._require_app(path)
        query = build_request(AdvertiserGetRequest, path, app_id=app_id, secret=secret)
        return await self._call(CallSpec("GET", path, query=query), AdvertiserListResult)

    async def revoke_token(self, access_token: str | SecretStr | None = None) -> RevokeTokenResult:
        """`POST oauth2/revoke_token/`: revoke `access_token` (default: this client's own token)."""
        path = "oauth2/revoke_token/"
        app_id, secret = self._require_app(path)
        token = access_token if access_token is not None else self._access_token
        if token is None:
            raise ClientValidationError(
                "no access token to revoke", code=None, endpoint=path, resolution_key="invalid_credentials"
            )
        body = build_request(RevokeTokenRequest, path, app_id=app_id, secret=secret, access_token=token)
        spec = CallSpec("POST", path, body=body, auth=False, idempotent=False)
        return await self._call(spec, RevokeTokenResult)

    async def refresh_user_token(self, refresh_token: str | SecretStr) -> RefreshTokenResult:
        """`POST tt_user/oauth2/refresh_token/`: refresh a TikTok-account token (ref §4.4).

        Marketing API tokens do not expire and have no refresh (ref §4.4); this is only for tokens that
        were issued with a refresh token.
        """
        path = "tt_user/oauth2/refresh_token/"
        app_id, secret = self._require_app(path)
        body = build_request(
            RefreshTokenRequest, path, client_id=app_id, client_secret=secret, refresh_token=refresh_token
        )
        spec = CallSpec("POST", path, body=body, auth=False, idempotent=False)
        return await self._call(spec, RefreshTokenResult)

    # -- Offline event sets and Events API (ref §3) --------------------------------------------------------

    async def create_offline_event_set(
        self,
        advertiser_id: str,
        name: str,
        *,
        description: str | None = None,
        auto_tracking: bool | None = None,
    ) -> OfflineCreateResult:
        """`POST offline/create/`: a new offline event set.

        `description` is required by TikTok (official SDK offline_create.yml, ref §9); without one, the
        client sends "<name> (created by ttsync)".
        """
        description = description or f"{name} (created by ttsync)"
        path = "offline/create/"
        body = build_request(
            OfflineCreateRequest,
            path,
            advertiser_id=advertiser_id,
            name=name,
            description=description,
            auto_tracking=auto_tracking,
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), OfflineCreateResult)

    async def get_offline_event_sets(
        self, advertiser_id: str, *, event_set_ids: Sequence[str] | None = None, name: str | None = None
    ) -> OfflineGetResult:
        """`GET offline/get/`: the advertiser's offline event sets (optionally filtered)."""
        path = "offline/get/"
        query = build_request(
            OfflineGetRequest,
            path,
            advertiser_id=advertiser_id,
            event_set_ids=list(event_set_ids) if event_set_ids is not None else None,
            name=name,
        )
        return await self._call(CallSpec("GET", path, query=query), OfflineGetResult)

    async def track_events(
        self,
        *,
        event_source: EventSource,
        event_source_id: str,
        data: Sequence[TrackEvent | Mapping[str, Any]],
        test_event_code: str | None = None,
        partner_name: str | None = None,
    ) -> EventTrackResult:
        """`POST event/track/`: 1-1,000 events (more and TikTok rejects the whole request, ref §3.1).

        Retried automatically after an ambiguous timeout only when every event has an `event_id`, because
        TikTok de-duplicates on (source, event, event_id) within 48 hours (ref §3.3).
        """
        path = "event/track/"
        body = build_request(
            EventTrackRequest,
            path,
            event_source=event_source,
            event_source_id=event_source_id,
            data=list(data),
            test_event_code=test_event_code,
            partner_name=partner_name,
        )
        deduplicable = all(event.event_id for event in body.data)
        return await self._call(CallSpec("POST", path, body=body, idempotent=deduplicable), EventTrackResult)

    async def track_events_json(
        self,
        *,
        event_source: EventSource,
        event_source_id: str,
        data_json: str | bytes,
        test_event_code: str | None = None,
        partner_name: str | None = None,
        deduplicable: bool = False,
    ) -> EventTrackResult:
        """`POST event/track/` with `data` already serialized (the bulk path of offline events).

        `data_json` must be a JSON array of 1-1,000 events shaped like `TrackEvent` (ref §3.1), as text or UTF-8
        bytes; it is built by
        `ttsync.events` in DuckDB, which avoids Python objects per event. Only the other fields are validated
        here. Pass `deduplicable=True` only when every event carries an `event_id`: TikTok then drops copies
        (ref §3.3), so an ambiguous timeout may be retried.
        """
        path = "event/track/"
        head = build_request(
            EventTrackRequest,
            path,
            event_source=event_source,
            event_source_id=event_source_id,
            data=[TrackEvent(event="placeholder", event_time=0)],  # validated shape, replaced below
            test_event_code=test_event_code,
            partner_name=partner_name,
        )
        data = data_json.encode() if isinstance(data_json, str) else data_json
        stripped = data if data[:2] == b"[{" and data[-2:] == b"}]" else data.strip()  # no copy when bare
        if not (stripped.startswith(b"[{") and stripped.endswith(b"}]")):
            raise ClientValidationError(
                "request not sent: data must be a JSON array of 1 to 1,000 event objects",
                code=None,
                endpoint=path,
                resolution_key="invalid_request",
            )
        fields = head.model_dump(mode="json", exclude={"data"}, exclude_none=True)
        body = b"".join((json.dumps(fields)[:-1].encode(), b', "data": ', stripped, b"}"))
        return await self._call(
            CallSpec("POST", path, content=body, idempotent=deduplicable), EventTrackResult
        )
