"""DMP custom audience endpoints (ref §2.2-2.4): customer files, create, update, share, delete."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path, PurePath
from typing import Final, Literal

from ttsync.destinations.tiktok.client._core import BaseAsyncClient, CallSpec, build_request
from ttsync.destinations.tiktok.client.errors import ClientValidationError
from ttsync.destinations.tiktok.client.models.common import (
    CalculateType,
    CreateCalculateType,
    EmptyResult,
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

_UPLOAD_SUFFIXES: Final = frozenset({".csv", ".txt"})  # ref §2.4: only .csv and .txt are accepted
# Upload-only calculate_type values and their equals on create (same enum numbers 6 and 7, ref §2.4, §9).
_CREATE_TYPES: Final[dict[str, CreateCalculateType]] = {
    "MAID_SHA256": "FIRST_SHA256",
    "MAID_MD5": "FIRST_MD5",
}


class CustomAudienceMethods(BaseAsyncClient):
    """`dmp/custom_audience/...` endpoints (ref §2.2-2.4), mixed into `AsyncTikTokClient`."""

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
