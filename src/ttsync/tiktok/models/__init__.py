"""Typed request and response models for every endpoint the client calls."""

from ttsync.tiktok.models.common import (
    ApiResult,
    CalculateType,
    CreateCalculateType,
    EmptyResult,
    IdSchema,
    PageInfo,
)
from ttsync.tiktok.models.dmp import (
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
from ttsync.tiktok.models.events import (
    MAX_EVENTS_PER_REQUEST,
    EventSource,
    EventTrackResult,
    OfflineCreateResult,
    OfflineEventSet,
    OfflineGetResult,
    TrackEvent,
)
from ttsync.tiktok.models.oauth import (
    AccessTokenResult,
    AdvertiserListResult,
    AuthorizedAdvertiser,
    RefreshTokenResult,
    RevokeTokenResult,
)
from ttsync.tiktok.models.segment import SegmentAudienceResult

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
