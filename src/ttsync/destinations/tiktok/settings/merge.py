"""Merging and checking a TikTok destination's settings: destination <- data template <- orchestration.

`ttsync.config` keeps settings as plain mappings (it names no platform); these functions validate them
against the TikTok models (`settings.models`): at apply / validate time (`check_workspace_file`,
`checked_destination`, `checked_credential`) and when a run is built (`effective_settings`).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from ttsync.config.common import format_validation_error
from ttsync.config.file import WorkspaceFile
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration
from ttsync.destinations.tiktok.settings.models import (
    DestinationSettings,
    ResolvedAudienceSettings,
    ResolvedOfflineEventsSettings,
    ResolvedSettings,
    validate_settings,
)
from ttsync.destinations.tiktok.settings.rules import DigitsId
from ttsync.errors import ConfigError, MissingSettingError

_ADVERTISER_IDS: TypeAdapter[list[str]] = TypeAdapter(list[DigitsId])


def settings_of(destination: Destination) -> DestinationSettings:
    """A destination's own (partial) settings, validated against its kind's model."""
    return validate_settings(destination.kind, destination.settings, f"destination {destination.name!r}")


def checked_destination(destination: Destination) -> Destination:
    """The destination with its settings validated and normalized (aliases resolved, ids as strings, user id
    types upper-cased, unset settings left out), as the store keeps them; `ConfigError` says how to fix one."""
    settings = settings_of(destination).model_dump(mode="json", exclude_none=True)
    return destination.model_copy(update={"settings": settings})


def checked_credential(credential: Credential) -> Credential:
    """The credential, its advertiser ids checked as TikTok ids; `ConfigError` says how to fix one."""
    try:
        _ADVERTISER_IDS.validate_python(credential.advertiser_ids)
    except ValidationError as exc:
        where = f"credential {credential.name!r}: advertiser_ids"
        raise ConfigError(format_validation_error(exc, where)) from None
    return credential


def check_workspace_file(config: WorkspaceFile, source: str) -> WorkspaceFile:
    """Validate the TikTok side of a parsed `ttsync.yaml`: each destination's settings (normalized in the
    returned copy), its data templates' settings against the destination's kind, credentials' ids."""
    try:
        for entry in config.credentials:
            _ADVERTISER_IDS.validate_python(entry.advertiser_ids)
    except ValidationError as exc:
        where = f"{source}: credential {entry.name!r}: advertiser_ids"
        raise ConfigError(format_validation_error(exc, where)) from None
    destinations = []
    for destination in config.destinations:
        try:
            destinations.append(checked_destination(destination))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    kinds = {d.name: d.kind for d in destinations}
    for template in config.templates:
        if template.destination in kinds:
            where = f"{source}: data template {template.name!r}"
            validate_settings(kinds[template.destination], template.settings, where)
    return config.model_copy(update={"destinations": destinations})


def effective_settings(
    destination: Destination,
    template: DataTemplate | None,
    orchestration: Orchestration,
    *,
    campaign: str | None = None,
    group: str | None = None,
) -> ResolvedSettings:
    """Merge destination ← data template overrides ← orchestration settings and validate the result.

    Raises `MissingSettingError` naming the setting and where to set it, or `ConfigError` for invalid values.
    """
    if destination.kind == "audience":
        return effective_audience_settings(
            destination, template, orchestration, campaign=campaign, group=group
        )
    return effective_offline_events_settings(destination, template, orchestration)


def _merged(
    destination: Destination, template: DataTemplate | None, orchestration: Orchestration
) -> dict[str, Any]:
    if template is not None and template.destination != destination.name:
        raise ConfigError(
            f"orchestration {orchestration.name!r} uses data template {template.name!r}, which belongs to "
            f"destination {template.destination!r}, not {destination.name!r}: pick a template of that destination"
        )
    merged: dict[str, Any] = settings_of(destination).model_dump(exclude_none=True)
    if template is not None:
        merged |= validate_settings(
            destination.kind, template.settings, f"data template {template.name!r}"
        ).model_dump(exclude_none=True)
    merged |= validate_settings(
        destination.kind, orchestration.settings, f"orchestration {orchestration.name!r}"
    ).model_dump(exclude_none=True)
    return merged


def _where_to_set(setting: str, destination: Destination, template: DataTemplate | None) -> str:
    places = [f"destination {destination.name!r}"]
    places.append(f"data template {template.name!r}" if template else "a data template")
    return f"set `{setting}` on " + " or ".join(places)


def effective_audience_settings(
    destination: Destination,
    template: DataTemplate | None,
    orchestration: Orchestration,
    *,
    campaign: str | None = None,
    group: str | None = None,
) -> ResolvedAudienceSettings:
    """`effective_settings` for an audience destination."""
    if destination.kind != "audience":
        raise ConfigError(f"destination {destination.name!r} is {destination.kind}, not audience")
    merged = _merged(destination, template, orchestration)
    # The orchestration's own name wins; next a rendered template name; then template/destination settings.
    if "audience_name" not in orchestration.settings and template is not None:
        rendered = template.render_audience_name(campaign, group)
        if rendered:
            merged["audience_name"] = rendered
    if not merged.get("audience_name"):
        holder = f"on its data template {template.name!r}" if template else "on its data template"
        raise MissingSettingError(
            "audience_name",
            f"audience name is required at orchestration: set `audience_name` on orchestration "
            f"{orchestration.name!r} or {holder}",
        )
    if not merged.get("advertiser_ids"):
        raise MissingSettingError(
            "advertiser_ids",
            "advertiser_ids is not set: " + _where_to_set("advertiser_ids", destination, template),
        )
    try:
        return ResolvedAudienceSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"orchestration {orchestration.name!r}")) from None


def effective_offline_events_settings(
    destination: Destination, template: DataTemplate | None, orchestration: Orchestration
) -> ResolvedOfflineEventsSettings:
    """`effective_settings` for an offline-events destination."""
    if destination.kind != "offline_events":
        raise ConfigError(f"destination {destination.name!r} is {destination.kind}, not offline_events")
    merged = _merged(destination, template, orchestration)
    if not merged.get("event_set_id"):
        holder = f"on its data template {template.name!r}" if template else "on its data template"
        raise MissingSettingError(
            "event_set_id",
            f"event set id is required at orchestration: set `event_set_id` on orchestration "
            f"{orchestration.name!r}, {holder}, or on destination {destination.name!r}",
        )
    if not merged.get("advertiser_id"):
        raise MissingSettingError(
            "advertiser_id",
            "advertiser_id is not set: " + _where_to_set("advertiser_id", destination, template),
        )
    try:
        return ResolvedOfflineEventsSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"orchestration {orchestration.name!r}")) from None
