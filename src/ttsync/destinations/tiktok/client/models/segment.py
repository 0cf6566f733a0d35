"""The partner Segment API: `segment/audience/` and `segment/mapping/` (ref §2.1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ttsync.destinations.tiktok.client.models.common import ApiResult, Id, IdSchema, RequestModel


class SegmentAudienceRequest(RequestModel):
    """`POST segment/audience/` body."""

    advertiser_id: Id
    action: Literal["create", "delete"]
    custom_audience_name: str | None = Field(default=None, min_length=1)
    delete_audience_id: Id | None = None


class SegmentAudienceResult(ApiResult):
    """`data.audience_id` of the created (or deleted) audience."""

    audience_id: str


class SegmentMappingRequest(RequestModel):
    """`POST segment/mapping/` body. Entry *i* of each row belongs to `id_schema[i]`; `{}` = no value."""

    advertiser_ids: list[Id] = Field(min_length=1)
    action: Literal["add", "delete"]
    id_schema: list[IdSchema] = Field(min_length=1)
    # Built and checked by `mapping_rows_bytes` (alignment, hash format); re-validating every entry here would
    # cost more CPU than the rest of the request path.
    batch_data: list[list[dict[str, Any]]] = Field(min_length=1)
