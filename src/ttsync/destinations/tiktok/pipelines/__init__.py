"""The TikTok runs as declared task lists: the audience workflow (`audience`) and the events workflow
(`events`); `base` holds what both share (the run's objects, its client, its options). `pipeline_for` picks the
run of a destination kind, so the app layer never names one."""

from __future__ import annotations

from typing import Any

from ttsync.destinations.tiktok.audience.customer_file import single_calculate_type
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.destinations.tiktok.pipelines.events import EventsRun
from ttsync.destinations.tiktok.schemas import ID_SCHEMAS
from ttsync.destinations.tiktok.settings import ResolvedAudienceSettings, ResolvedOfflineEventsSettings
from ttsync.errors import ConfigError


def pipeline_for(
    settings: ResolvedAudienceSettings | ResolvedOfflineEventsSettings, **common: Any
) -> OrchestrationRun:
    """The run (task list) for a destination's merged settings; `common` are `OrchestrationRun`'s fields.

    Configuration mistakes a run would only meet later are refused here, before anything is read."""
    if isinstance(settings, ResolvedOfflineEventsSettings):
        return EventsRun(settings=settings, **common)
    orchestration = common["orchestration"]
    if not orchestration.key_column:
        raise ConfigError(
            f"orchestration {orchestration.name!r} needs `key_column`: the column that identifies a person "
            "(for example a customer id), so the audience can be diffed run after run"
        )
    if settings.delivery == "customer_file":
        # TikTok's customer-file audiences hold one identifier type: refuse a misconfiguration before reading.
        single_calculate_type([ID_SCHEMAS[t] for t in settings.user_id_types])
    return AudienceRun(settings=settings, **common)
