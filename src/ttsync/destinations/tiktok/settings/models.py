"""The settings of a TikTok destination (audience or offline events), partial as written and complete as
resolved.

A destination, its data template and an orchestration each give part of these (as plain mappings in
`ttsync.config`); `settings.merge` merges and validates them (`effective_settings`). No I/O.
"""

from __future__ import annotations

import zoneinfo
from typing import Any, Literal

import pycountry
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ttsync.config.common import DestinationKind, UserIdType, _Model, format_validation_error
from ttsync.destinations.tiktok.settings.rules import (
    DigitsId,
    audience_name_warning,
    check_strict_audience_name,
)
from ttsync.errors import ConfigError

Delivery = Literal["partner", "customer_file"]
SyncMode = Literal["mirror", "append", "create", "replace"]
EventSource = Literal["offline", "web", "crm"]
PhoneFormat = Literal["e164", "digits"]

# ---------------------------------------------------------------------------------------------------------
# Destination settings


def _advertiser_list(value: Any) -> Any:
    # One advertiser may be given as a plain string; several as a list.
    if isinstance(value, str | int):
        return [str(value)]
    return value


def _check_region(value: str | None) -> str | None:
    if value is None:
        return None
    upper = value.strip().upper()
    if len(upper) != 2 or pycountry.countries.get(alpha_2=upper) is None:
        raise ValueError("default_region is an ISO 3166 alpha-2 country code, for example 'US' or 'GB'")
    return upper


DEFAULT_MAX_REJECT_RATE = 0.05  # share of rejected rows above which a run ends `succeeded_with_warnings`


class AudienceSettings(_Model):
    """Settings of an `audience` destination; any may be left for the data template or orchestration."""

    advertiser_ids: list[DigitsId] | None = None
    audience_name: str | None = None
    strict_audience_name: bool | None = None
    user_id_types: list[UserIdType] | None = None
    delivery: Delivery | None = None
    mode: SyncMode | None = None
    retention_days: int | None = Field(default=None, ge=1, le=365)
    remove_guard: float | None = Field(default=None, ge=0.0, le=1.0)
    max_reject_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    default_region: str | None = None
    phone_format: PhoneFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "advertiser_id" in data and "advertiser_ids" not in data:
            data = dict(data)
            data["advertiser_ids"] = data.pop("advertiser_id")
        return data

    @field_validator("advertiser_ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _advertiser_list(value)

    @field_validator("advertiser_ids")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one advertiser id")
        return value

    @field_validator("user_id_types", mode="before")
    @classmethod
    def _upper_types(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [v.strip().upper() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("user_id_types")
    @classmethod
    def _types_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one user id type: EMAIL, PHONE, IDFA or AAID")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each user id type may appear once")
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return _check_region(value)

    @field_validator("audience_name")
    @classmethod
    def _name_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("audience_name is blank: give a name or leave the setting out")
        return value


def _default_id_types() -> list[UserIdType]:
    return ["EMAIL"]  # EMAIL matches best (seed 001)


class ResolvedAudienceSettings(_Model):
    """Complete settings of an audience delivery, after merging (see `effective_settings`)."""

    kind: Literal["audience"] = "audience"
    advertiser_ids: list[DigitsId] = Field(min_length=1)
    audience_name: str
    strict_audience_name: bool = False
    user_id_types: list[UserIdType] = Field(default_factory=lambda: _default_id_types(), min_length=1)
    delivery: Delivery = "partner"
    mode: SyncMode = "mirror"
    retention_days: int | None = Field(default=None, ge=1, le=365)
    remove_guard: float = Field(default=0.5, ge=0.0, le=1.0)
    # Above this share of rejected identifier values the run ends `succeeded_with_warnings` and notifies.
    max_reject_rate: float = Field(default=DEFAULT_MAX_REJECT_RATE, ge=0.0, le=1.0)
    default_region: str | None = None
    phone_format: PhoneFormat = "e164"

    @model_validator(mode="after")
    def _cross_checks(self) -> ResolvedAudienceSettings:
        if self.mode == "replace" and self.delivery != "customer_file":
            raise ValueError(
                "mode 'replace' uses the customer-file REPLACE action: set delivery to 'customer_file', "
                "or use mode 'mirror' with partner delivery"
            )
        if self.retention_days is not None and self.delivery != "customer_file":
            raise ValueError(
                "retention_days applies to customer-file audiences only: set delivery to 'customer_file' "
                "or remove retention_days"
            )
        if self.strict_audience_name:
            check_strict_audience_name(self.audience_name)
        return self

    def warnings(self) -> list[str]:
        """Non-fatal remarks to show before a run (e.g. TikTok will truncate the name)."""
        warning = audience_name_warning(self.audience_name)
        return [warning] if warning else []


class OfflineEventsSettings(_Model):
    """Settings of an `offline_events` destination; the event set may come from the template/orchestration."""

    advertiser_id: DigitsId | None = None
    event_set_id: DigitsId | None = None
    event_source: EventSource | None = None
    test_event_code: str | None = None
    timezone: str | None = None
    default_region: str | None = None
    derive_event_id: bool | None = None
    partner_name: str | None = None
    max_reject_rate: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return _check_region(value)

    @field_validator("advertiser_id", "event_set_id", mode="before")
    @classmethod
    def _int_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "timezone is an IANA zone name used for timestamps without a zone, e.g. 'UTC' or "
                "'America/New_York'"
            ) from exc
        return value


class ResolvedOfflineEventsSettings(_Model):
    """Complete settings of an offline-events delivery, after merging (see `effective_settings`)."""

    kind: Literal["offline_events"] = "offline_events"
    advertiser_id: DigitsId
    event_set_id: DigitsId
    event_source: EventSource = "offline"
    test_event_code: str | None = None
    timezone: str = "UTC"
    default_region: str | None = None  # country of phones written without +country code
    derive_event_id: bool = False  # derive a deterministic event_id when the query has none
    # Sent as event/track/ `partner_name` only when set: TikTok answers 40063 "invalid partner name" for
    # names it does not know, and public clients do not send one (ref §3.1, §9). Use a name TikTok registered.
    partner_name: str | None = None
    # Above this share of rejected events the run ends `succeeded_with_warnings` and notifies.
    max_reject_rate: float = Field(default=DEFAULT_MAX_REJECT_RATE, ge=0.0, le=1.0)

    def warnings(self) -> list[str]:
        """Non-fatal remarks to show before a run."""
        if self.test_event_code:
            return ["test_event_code is set: TikTok treats these events as test events, not for attribution"]
        return []


DestinationSettings = AudienceSettings | OfflineEventsSettings
ResolvedSettings = ResolvedAudienceSettings | ResolvedOfflineEventsSettings


def settings_model(kind: DestinationKind) -> type[AudienceSettings] | type[OfflineEventsSettings]:
    """The partial settings model of a destination kind."""
    return AudienceSettings if kind == "audience" else OfflineEventsSettings


def validate_settings(kind: DestinationKind, settings: dict[str, Any], where: str) -> DestinationSettings:
    """Validate a partial settings mapping for `kind`, turning pydantic errors into a `ConfigError`."""
    try:
        return settings_model(kind).model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{where}: settings")) from None
