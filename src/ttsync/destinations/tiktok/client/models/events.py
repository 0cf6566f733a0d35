"""Offline event sets and the Events API 2.0 `event/track/` (ref §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ttsync.destinations.tiktok.client.models.common import ApiResult, Id, RequestModel, ResponseModel

EventSource = Literal["web", "app", "offline", "crm"]

MAX_EVENTS_PER_REQUEST = 1_000  # ref §3.1: more than 1,000 and the whole request is rejected


class OfflineCreateRequest(RequestModel):
    """`POST offline/create/` body (ref §3.5)."""

    advertiser_id: Id
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)  # required (official SDK offline_create.yml, ref §9)
    auto_tracking: bool | None = None


class OfflineCreateResult(ApiResult):
    """`data.event_set_id`."""

    event_set_id: str


class OfflineGetRequest(RequestModel):
    """`GET offline/get/` query (ref §3.5)."""

    advertiser_id: Id
    event_set_ids: list[Id] | None = Field(default=None, min_length=1)
    name: str | None = None


class OfflineEventSet(ResponseModel):
    """One item of `data.event_set_list`."""

    event_set_id: str
    advertiser_id: str | None = None
    name: str = ""
    description: str | None = None
    auto_tracking: bool | None = None
    create_time: str | int | None = None
    update_time: str | int | None = None


class OfflineGetResult(ApiResult):
    """The advertiser's offline event sets."""

    event_set_list: list[OfflineEventSet] = Field(default_factory=list)


class TrackEvent(RequestModel):
    """One event in `event/track/` `data[]` (ref §3.1). Identifiers in `user` must already be hashed.

    `user`, `properties`, `page`, `lead`, `app` and `ad` are free-form objects: the events layer owns their
    vocabulary (ref §3.1 lists it). `event_id` is a string (a number gives 40002, ref §3.1).
    """

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    event: str = Field(min_length=1)
    event_time: int = Field(ge=0, description="Unix seconds, UTC.")
    event_id: str | None = None
    user: dict[str, object] | None = None
    properties: dict[str, object] | None = None
    page: dict[str, object] | None = None
    lead: dict[str, object] | None = None
    limited_data_use: bool | None = None


class EventTrackRequest(RequestModel):
    """`POST event/track/` body; `test_event_code` is top-level (ref §3.1, SEG PR #471)."""

    event_source: EventSource
    event_source_id: Id
    data: list[TrackEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)
    test_event_code: str | None = None
    partner_name: str | None = None


class EventTrackResult(ApiResult):
    """`event/track/` answer; `partial_success` is set if TikTok ever answers 20001 (ref §3.4)."""
