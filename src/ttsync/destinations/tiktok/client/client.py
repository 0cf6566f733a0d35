"""`AsyncTikTokClient`: one typed coroutine per TikTok Business API v1.3 endpoint ttsync uses."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Final, Literal

from pydantic import SecretStr

from ttsync.destinations.tiktok.client._core import BaseAsyncClient, CallSpec, build_request
from ttsync.destinations.tiktok.client.batch_data import build_batch_data
from ttsync.destinations.tiktok.client.errors import ClientValidationError, InvalidRequestError
from ttsync.destinations.tiktok.client.models.common import (
    CalculateType,
    CreateCalculateType,
    EmptyResult,
    IdSchema,
)
from ttsync.destinations.tiktok.client.models.dmp import (
    CustomAudienceCreateRequest,
    CustomAudienceCreateResult,
    CustomAudienceDeleteRequest,
    CustomAudienceGetRequest,
    CustomAudienceGetResult,
    CustomAudienceListRequest,
    CustomAudienceListResult,
    CustomAudienceShareCancelRequest,
    CustomAudienceShareRequest,
    CustomAudienceSummary,
    CustomAudienceUpdateRequest,
    FileUploadResult,
    LookalikeCreateRequest,
    LookalikeSpec,
    UpdateAction,
)
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
from ttsync.destinations.tiktok.client.models.segment import (
    SegmentAudienceRequest,
    SegmentAudienceResult,
    SegmentMappingRequest,
)

_UPLOAD_SUFFIXES: Final = frozenset({".csv", ".txt"})  # ref §2.4: only .csv and .txt are accepted
# Upload-only calculate_type values and their equals on create (same enum numbers 6 and 7, ref §2.4, §9).
_CREATE_TYPES: Final[dict[str, CreateCalculateType]] = {
    "MAID_SHA256": "FIRST_SHA256",
    "MAID_MD5": "FIRST_MD5",
}


_SIZE_CODES: Final = frozenset({40011, 40061})  # too many IDs / invalid batch size (ref §5.1)
_AT_MOST: Final = re.compile(r"at most ([\d,]+)")


def _shrunk(rows: int, message: str) -> int | None:
    """The next request size after a size refusal of `rows` rows: TikTok's stated maximum, else half."""
    match = _AT_MOST.search(message)
    stated = int(match.group(1).replace(",", "")) if match else 0
    size = stated if 0 < stated < rows else rows // 2
    return size if size >= 1 else None


def _dumps(rows: Any) -> str:
    return json.dumps(rows, separators=(",", ":"))


def _mapping_body(fields: dict[str, Any], rows_json: str) -> bytes:
    return (json.dumps(fields)[:-1] + ', "batch_data": ' + rows_json + "}").encode()


class AsyncTikTokClient(BaseAsyncClient):
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

    # -- Segment API (ref §2.1) ----------------------------------------------------------------------------

    async def create_segment_audience(self, advertiser_id: str, name: str) -> SegmentAudienceResult:
        """`POST segment/audience/` action=create: a new partner audience (names > 70 chars are cut)."""
        path = "segment/audience/"
        body = build_request(
            SegmentAudienceRequest,
            path,
            advertiser_id=advertiser_id,
            action="create",
            custom_audience_name=name,
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), SegmentAudienceResult)

    async def delete_segment_audience(self, advertiser_id: str, audience_id: str) -> SegmentAudienceResult:
        """`POST segment/audience/` action=delete."""
        path = "segment/audience/"
        body = build_request(
            SegmentAudienceRequest,
            path,
            advertiser_id=advertiser_id,
            action="delete",
            delete_audience_id=audience_id,
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), SegmentAudienceResult)

    async def segment_mapping(
        self,
        *,
        action: Literal["add", "delete"],
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`POST segment/mapping/`: add or delete members of `audience_ids` on every advertiser listed.

        Each row is one person: hashes aligned with `id_schema`, None where the person has no value.
        """
        path = "segment/mapping/"
        batch = build_batch_data(id_schema, rows, audience_ids)
        body = build_request(
            SegmentMappingRequest,
            path,
            advertiser_ids=list(advertiser_ids),
            action=action,
            id_schema=list(id_schema),
            batch_data=batch,
        )
        fields = body.model_dump(mode="json", exclude={"batch_data"}, exclude_none=True)
        return await self._send_mapping(fields, None, body.model_dump(mode="json")["batch_data"])

    async def segment_mapping_json(
        self,
        *,
        action: Literal["add", "delete"],
        advertiser_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        batch_data_json: str,
    ) -> EmptyResult:
        """`POST segment/mapping/` with `batch_data` already serialized (the bulk path of audience sync).

        `batch_data_json` must be a JSON array of rows aligned with `id_schema` (ref §2.1); it is built from
        Arrow columns by `ttsync.destinations.tiktok.client.batch_data`, which avoids one Python object per identifier. The other
        fields are validated as in `segment_mapping`.
        """
        path = "segment/mapping/"
        head = build_request(
            SegmentMappingRequest,
            path,
            advertiser_ids=list(advertiser_ids),
            action=action,
            id_schema=list(id_schema),
            batch_data=[[{}] * len(id_schema)],  # placeholder: validated shape, replaced below
        )
        fields = head.model_dump(mode="json", exclude={"batch_data"}, exclude_none=True)
        return await self._send_mapping(fields, batch_data_json, None)

    def mapping_row_limit(self) -> int | None:
        """Rows per `segment/mapping/` request this server accepted after refusing a larger one (None: no
        refusal seen). Remembered per API server and app in the client's limiter registry (by default one per
        process), so every client of the app sends that size from then on."""
        return self._registry.mapping_row_limits.get((self._limiter_scope, self.app_id or ""))

    async def _send_mapping(
        self, fields: dict[str, Any], rows_json: str | None, rows: list[Any] | None
    ) -> EmptyResult:
        """Send one mapping, split into requests of at most the remembered row limit.

        TikTok documents no maximum rows per request (ref §2.1, §9). When it refuses a request as too large
        (40011 "too many IDs", or 40061 "invalid batch size"), the rows are split, in requests of the size
        its message names or else half, and the size it accepts is remembered for this server and app, so
        later batches go at that size from the start instead of failing. Re-sending rows is harmless: adding
        a member twice or removing an absent one changes nothing.
        """
        path = "segment/mapping/"
        key = (self._limiter_scope, self.app_id or "")
        limits = self._registry.mapping_row_limits
        limit = limits.get(key)
        if limit is None:
            body = _mapping_body(fields, rows_json if rows_json is not None else _dumps(rows))
            try:
                return await self._call(CallSpec("POST", path, content=body), EmptyResult)
            except InvalidRequestError as exc:
                if exc.code not in _SIZE_CODES:
                    raise
                rows = rows if rows is not None else json.loads(rows_json or "[]")
                limit = _shrunk(len(rows), exc.message)
                if limit is None:
                    raise
                limits[key] = limit
        if rows is None:
            rows = json.loads(rows_json or "[]")
        result = EmptyResult()
        start = 0
        while start < len(rows):
            chunk = rows[start : start + limit]
            try:
                result = await self._call(
                    CallSpec("POST", path, content=_mapping_body(fields, _dumps(chunk))), EmptyResult
                )
            except InvalidRequestError as exc:
                smaller = _shrunk(len(chunk), exc.message) if exc.code in _SIZE_CODES else None
                if smaller is None:
                    raise
                limit = limits[key] = smaller
                continue
            start += len(chunk)
        return result

    async def add_segment_members(
        self,
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`segment_mapping(action="add", ...)`."""
        return await self.segment_mapping(
            action="add",
            advertiser_ids=advertiser_ids,
            audience_ids=audience_ids,
            id_schema=id_schema,
            rows=rows,
        )

    async def remove_segment_members(
        self,
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`segment_mapping(action="delete", ...)`."""
        return await self.segment_mapping(
            action="delete",
            advertiser_ids=advertiser_ids,
            audience_ids=audience_ids,
            id_schema=id_schema,
            rows=rows,
        )

    # -- DMP custom audiences (ref §2.2-2.4) ---------------------------------------------------------------

    async def list_custom_audiences(
        self,
        advertiser_id: str,
        *,
        custom_audience_ids: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 100,
    ) -> CustomAudienceListResult:
        """`GET dmp/custom_audience/list/`: one page of the advertiser's audiences."""
        path = "dmp/custom_audience/list/"
        query = build_request(
            CustomAudienceListRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_ids=list(custom_audience_ids) if custom_audience_ids is not None else None,
            page=page,
            page_size=page_size,
        )
        return await self._call(CallSpec("GET", path, query=query), CustomAudienceListResult)

    async def iter_custom_audiences(
        self, advertiser_id: str, *, page_size: int = 100
    ) -> AsyncIterator[CustomAudienceSummary]:
        """Every audience of the advertiser, following `page_info` across pages."""
        page = 1
        while True:
            result = await self.list_custom_audiences(advertiser_id, page=page, page_size=page_size)
            for audience in result.audiences:
                yield audience
            if not result.audiences or page >= result.page_info.total_page:
                return
            page += 1

    async def get_custom_audiences(
        self, advertiser_id: str, custom_audience_ids: Sequence[str], *, history_size: int | None = None
    ) -> CustomAudienceGetResult:
        """`GET dmp/custom_audience/get/`: details and history of 1-100 audiences (owned or shared)."""
        path = "dmp/custom_audience/get/"
        query = build_request(
            CustomAudienceGetRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_ids=list(custom_audience_ids),
            history_size=history_size,
        )
        return await self._call(CallSpec("GET", path, query=query), CustomAudienceGetResult)

    async def upload_audience_file(
        self,
        advertiser_id: str,
        *,
        calculate_type: CalculateType,
        file: bytes | Path,
        file_name: str | None = None,
    ) -> FileUploadResult:
        """`POST dmp/custom_audience/file/upload/` (multipart), with the file's MD5 as `file_signature`."""
        path = "dmp/custom_audience/file/upload/"
        if isinstance(file, Path):
            content = file.read_bytes()
            name = file_name or file.name
        else:
            content = file
            name = file_name or "audience.csv"
        if PurePath(name).suffix.lower() not in _UPLOAD_SUFFIXES:
            raise ClientValidationError(
                "request not sent: file_name must end in .csv or .txt",
                code=None,
                endpoint=path,
                resolution_key="invalid_request",
            )
        # ref §2.4: file_signature is the MD5 hex of the file, checked by TikTok. Not a security use.
        signature = hashlib.md5(content, usedforsecurity=False).hexdigest()
        form = {
            "advertiser_id": advertiser_id,
            "calculate_type": calculate_type,
            "file_signature": signature,
            "file_name": name,
        }
        spec = CallSpec("POST", path, form=form, files={"file": (name, content, "text/csv")})
        return await self._call(spec, FileUploadResult)

    async def create_custom_audience(
        self,
        advertiser_id: str,
        *,
        name: str,
        calculate_type: CreateCalculateType | CalculateType,
        file_paths: Sequence[str],
        retention_in_days: int | None = None,
        audience_sub_type: Literal["NORMAL", "REACH_FREQUENCY"] | None = None,
        audience_enhancement: bool | None = None,
    ) -> CustomAudienceCreateResult:
        """`POST dmp/custom_audience/create/`: a customer-file audience from uploaded files.

        `calculate_type` is that of the files; MAID_* (upload only) is sent as its create-time equal FIRST_*
        (same enum value; create's enum has no MAID_*, ref §9).
        """
        path = "dmp/custom_audience/create/"
        body = build_request(
            CustomAudienceCreateRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_name=name,
            calculate_type=_CREATE_TYPES.get(calculate_type, calculate_type),
            file_paths=list(file_paths),
            retention_in_days=retention_in_days,
            audience_sub_type=audience_sub_type,
            audience_enhancement=audience_enhancement,
        )
        spec = CallSpec("POST", path, body=body, idempotent=False)
        return await self._call(spec, CustomAudienceCreateResult)

    async def create_lookalike_audience(
        self,
        advertiser_id: str,
        *,
        name: str,
        lookalike_spec: LookalikeSpec,
        audience_sub_type: Literal["NORMAL", "REACH_FREQUENCY"] | None = None,
    ) -> CustomAudienceCreateResult:
        """`POST dmp/custom_audience/lookalike/create/`: a lookalike of `lookalike_spec.source_audience_id`
        (ref §2.x); answers `data.custom_audience_id`. Not idempotent: a retried create may make two."""
        path = "dmp/custom_audience/lookalike/create/"
        body = build_request(
            LookalikeCreateRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_name=name,
            audience_sub_type=audience_sub_type,
            lookalike_spec=lookalike_spec,
        )
        return await self._call(
            CallSpec("POST", path, body=body, idempotent=False), CustomAudienceCreateResult
        )

    async def update_custom_audience(
        self,
        advertiser_id: str,
        custom_audience_id: str,
        *,
        action: UpdateAction,
        file_paths: Sequence[str] | None = None,
        name: str | None = None,
    ) -> EmptyResult:
        """`POST dmp/custom_audience/update/`. `action` is required: TikTok's default is REPLACE."""
        path = "dmp/custom_audience/update/"
        if file_paths is None and name is None:
            raise ClientValidationError(
                "request not sent: send file_paths or name (or both)",
                code=None,
                endpoint=path,
                resolution_key="invalid_request",
            )
        body = build_request(
            CustomAudienceUpdateRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_id=custom_audience_id,
            action=action,
            custom_audience_name=name,
            file_paths=list(file_paths) if file_paths is not None else None,
        )
        return await self._call(CallSpec("POST", path, body=body), EmptyResult)

    async def share_custom_audiences(
        self, advertiser_id: str, custom_audience_ids: Sequence[str], shared_advertiser_ids: Sequence[str]
    ) -> EmptyResult:
        """`POST dmp/custom_audience/share/`: share 1-10 audiences with 1-10 advertisers of the same BC."""
        path = "dmp/custom_audience/share/"
        body = build_request(
            CustomAudienceShareRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_ids=list(custom_audience_ids),
            shared_advertiser_ids=list(shared_advertiser_ids),
        )
        return await self._call(CallSpec("POST", path, body=body), EmptyResult)

    async def cancel_custom_audience_share(
        self, advertiser_id: str, custom_audience_id: str, shared_advertiser_id: str
    ) -> EmptyResult:
        """`POST dmp/custom_audience/share/cancel/`."""
        path = "dmp/custom_audience/share/cancel/"
        body = build_request(
            CustomAudienceShareCancelRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_id=custom_audience_id,
            shared_advertiser_id=shared_advertiser_id,
        )
        return await self._call(CallSpec("POST", path, body=body), EmptyResult)

    async def delete_custom_audiences(
        self, advertiser_id: str, custom_audience_ids: Sequence[str]
    ) -> EmptyResult:
        """`POST dmp/custom_audience/delete/` (ttsync's workflows never call this; it exists for tooling)."""
        path = "dmp/custom_audience/delete/"
        body = build_request(
            CustomAudienceDeleteRequest,
            path,
            advertiser_id=advertiser_id,
            custom_audience_ids=list(custom_audience_ids),
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), EmptyResult)

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
        data_json: str,
        test_event_code: str | None = None,
        partner_name: str | None = None,
        deduplicable: bool = False,
    ) -> EventTrackResult:
        """`POST event/track/` with `data` already serialized (the bulk path of offline events).

        `data_json` must be a JSON array of 1-1,000 events shaped like `TrackEvent` (ref §3.1); it is built by
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
        stripped = data_json.strip()
        if not (stripped.startswith("[{") and stripped.endswith("}]")):
            raise ClientValidationError(
                "request not sent: data must be a JSON array of 1 to 1,000 event objects",
                code=None,
                endpoint=path,
                resolution_key="invalid_request",
            )
        fields = head.model_dump(mode="json", exclude={"data"}, exclude_none=True)
        body = json.dumps(fields)[:-1] + ', "data": ' + stripped + "}"
        return await self._call(
            CallSpec("POST", path, content=body.encode(), idempotent=deduplicable), EventTrackResult
        )
