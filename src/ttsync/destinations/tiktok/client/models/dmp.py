"""DMP custom audience endpoints: list, get, file upload, create, update, share, delete (ref §2.2-2.4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ttsync.destinations.tiktok.client.models.common import (
    ApiResult,
    CreateCalculateType,
    Id,
    PageInfo,
    RequestModel,
    ResponseModel,
)

UpdateAction = Literal["APPEND", "REMOVE", "REPLACE"]
"""ref §2.4 step 3: the official enum is REMOVE (not DELETE); REPLACE is TikTok's default, never relied on."""


class CustomAudienceListRequest(RequestModel):
    """`GET dmp/custom_audience/list/` query."""

    advertiser_id: Id
    custom_audience_ids: list[Id] | None = Field(default=None, min_length=1, max_length=100)
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=100, ge=1, le=100)


class CustomAudienceSummary(ResponseModel):
    """One item of `dmp/custom_audience/list/`."""

    audience_id: str
    name: str = ""
    audience_type: str | None = None
    audience_sub_type: str | None = None
    calculate_type: str | None = None
    cover_num: int | None = None
    shared: bool | None = None
    is_creator: bool | None = None
    is_valid: bool | None = None
    is_expiring: bool | None = None
    is_auto_refresh: bool | None = None
    owner_id: str | None = None
    msg: str | None = None
    error_msg: str | None = None
    create_time: str | None = None
    expired_time: str | None = None


class CustomAudienceListResult(ApiResult):
    """One page of audiences."""

    audiences: list[CustomAudienceSummary] = Field(default_factory=list, alias="list")
    page_info: PageInfo = Field(default_factory=PageInfo)


class CustomAudienceGetRequest(RequestModel):
    """`GET dmp/custom_audience/get/` query."""

    advertiser_id: Id
    custom_audience_ids: list[Id] = Field(min_length=1, max_length=100)
    history_size: int | None = Field(default=None, ge=1, le=100)


class AudienceDetails(ResponseModel):
    """`audience_details` of `dmp/custom_audience/get/`."""

    audience_id: str
    name: str = ""
    type: str | None = None
    audience_sub_type: str | None = None
    calculate_type: str | None = None
    cover_num: int | None = None
    create_time: str | None = None
    expired_time: str | None = None
    is_creator: bool | None = None
    is_expiring: bool | None = None
    is_valid: bool | None = None
    is_auto_refresh: bool | None = None
    owner_id: str | None = None
    shared: bool | None = None
    msg: str | None = None
    error_msg: str | None = None


class AudienceHistoryEntry(ResponseModel):
    """One entry of `audience_history`."""

    action: str | None = None
    action_detail: str | None = None
    editor: str | None = None
    msg: str | None = None
    opt_time: str | None = None


class CustomAudienceDetail(ResponseModel):
    """One item of `dmp/custom_audience/get/`."""

    audience_details: AudienceDetails
    audience_history: list[AudienceHistoryEntry] = Field(default_factory=list)


class CustomAudienceGetResult(ApiResult):
    """Details of the requested audiences (owned and shared)."""

    audiences: list[CustomAudienceDetail] = Field(default_factory=list, alias="list")


class FileUploadResult(ApiResult):
    """`data.file_path` of `dmp/custom_audience/file/upload/` (usable only by the uploading advertiser)."""

    file_path: str


class CustomAudienceCreateRequest(RequestModel):
    """`POST dmp/custom_audience/create/` body."""

    advertiser_id: Id
    custom_audience_name: str = Field(min_length=1, max_length=128)
    calculate_type: CreateCalculateType
    file_paths: list[str] = Field(min_length=1, max_length=500)
    audience_sub_type: Literal["NORMAL", "REACH_FREQUENCY"] | None = None
    retention_in_days: int | None = Field(default=None, ge=1, le=365)
    audience_enhancement: bool | None = None


class CustomAudienceCreateResult(ApiResult):
    """`data.custom_audience_id`."""

    custom_audience_id: str


class LookalikeSpec(RequestModel):
    """`lookalike_spec` of `dmp/custom_audience/lookalike/create/` (ref §2.x Lookalike audiences)."""

    source_audience_id: Id  # at least 100 people, never a lookalike itself (TikTok checks)
    location_ids: list[str] | None = Field(default=None, min_length=1)
    audience_size: Literal["NARROW", "BALANCED", "BROAD"] | None = None
    include_source: bool | None = None
    mobile_os: Literal["ALL", "ANDROID", "IOS"] | None = None
    placements: list[str] | None = Field(default=None, min_length=1)


class LookalikeCreateRequest(RequestModel):
    """`POST dmp/custom_audience/lookalike/create/` body; the answer is `CustomAudienceCreateResult`."""

    advertiser_id: Id
    custom_audience_name: str = Field(min_length=1, max_length=128)
    audience_sub_type: Literal["NORMAL", "REACH_FREQUENCY"] | None = None
    lookalike_spec: LookalikeSpec


class CustomAudienceUpdateRequest(RequestModel):
    """`POST dmp/custom_audience/update/` body; `action` is always sent explicitly (DESIGN rule)."""

    advertiser_id: Id
    custom_audience_id: Id
    action: UpdateAction
    custom_audience_name: str | None = Field(default=None, min_length=1, max_length=128)
    file_paths: list[str] | None = Field(default=None, min_length=1, max_length=500)


class CustomAudienceShareRequest(RequestModel):
    """`POST dmp/custom_audience/share/` body (ref §2.3)."""

    advertiser_id: Id
    custom_audience_ids: list[Id] = Field(min_length=1, max_length=10)
    shared_advertiser_ids: list[Id] = Field(min_length=1, max_length=10)


class CustomAudienceShareCancelRequest(RequestModel):
    """`POST dmp/custom_audience/share/cancel/` body (ref §2.3)."""

    advertiser_id: Id
    custom_audience_id: Id
    shared_advertiser_id: Id


class CustomAudienceDeleteRequest(RequestModel):
    """`POST dmp/custom_audience/delete/` body (ref §2.4)."""

    advertiser_id: Id
    custom_audience_ids: list[Id] = Field(min_length=1, max_length=100)
