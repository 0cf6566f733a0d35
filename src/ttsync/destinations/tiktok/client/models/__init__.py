"""Typed request and response models for every endpoint the client calls."""

from ttsync.destinations.tiktok.client.models.common import (
    ApiResult,
    CalculateType,
    CreateCalculateType,
    EmptyResult,
    IdSchema,
    PageInfo,
)
from ttsync.destinations.tiktok.client.models.dmp import (
    AudienceDetails,
    AudienceHistoryEntry,
    CustomAudienceCreateResult,
    CustomAudienceDetail,
    CustomAudienceGetResult,
    CustomAudienceListResult,
    CustomAudienceSummary,
    FileUploadResult,
    UpdateAction,
)
from ttsync.destinations.tiktok.client.models.events import (
    MAX_EVENTS_PER_REQUEST,
    EventSource,
    EventTrackResult,
    OfflineCreateResult,
    OfflineEventSet,
    OfflineGetResult,
    TrackEvent,
)
from ttsync.destinations.tiktok.client.models.oauth import (
    AccessTokenResult,
    AdvertiserListResult,
    AuthorizedAdvertiser,
    RefreshTokenResult,
    RevokeTokenResult,
)
from ttsync.destinations.tiktok.client.models.segment import SegmentAudienceResult

__all__ = [
    "MAX_EVENTS_PER_REQUEST",
    "AccessTokenResult",
    "AdvertiserListResult",
    "ApiResult",
    "AudienceDetails",
    "AudienceHistoryEntry",
    "AuthorizedAdvertiser",
    "CalculateType",
    "CreateCalculateType",
    "CustomAudienceCreateResult",
    "CustomAudienceDetail",
    "CustomAudienceGetResult",
    "CustomAudienceListResult",
    "CustomAudienceSummary",
    "EmptyResult",
    "EventSource",
    "EventTrackResult",
    "FileUploadResult",
    "IdSchema",
    "OfflineCreateResult",
    "OfflineEventSet",
    "OfflineGetResult",
    "PageInfo",
    "RefreshTokenResult",
    "RevokeTokenResult",
    "SegmentAudienceResult",
    "TrackEvent",
    "UpdateAction",
]
