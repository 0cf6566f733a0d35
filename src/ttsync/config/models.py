"""Domain models of a workspace: credentials, sources, destinations, data templates, orchestrations.

These are plain pydantic models with no I/O. The store persists them (`ttsync.store.repos`), the config
file (`ttsync.config.file`) declares them, and `effective_settings` merges destination ← data
template ← orchestration settings into the complete, validated settings a run uses.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ttsync.config.common import (
    _NAME_TEMPLATE_FIELD,
    AUDIENCE_NAME_CUT,
    AUDIENCE_NAME_MAX,
    PRODUCTION_BASE_URL,
    SANDBOX_URL_ENV,
    Delivery,
    DestinationKind,
    DigitsId,
    Environment,
    EventSource,
    ObjectName,
    PhoneFormat,
    SourceKind,
    SyncMode,
    UserIdType,
    _Model,
    audience_name_warning,
    check_strict_audience_name,
)
from ttsync.config.settings import (
    DEFAULT_MAX_REJECT_RATE,
    AudienceSettings,
    DestinationSettings,
    OfflineEventsSettings,
    ResolvedAudienceSettings,
    ResolvedOfflineEventsSettings,
    ResolvedSettings,
    format_validation_error,
    settings_model,
    validate_settings,
)
from ttsync.errors import ConfigError, MissingSettingError

__all__ = [
    "AUDIENCE_NAME_CUT",
    "AUDIENCE_NAME_MAX",
    "DEFAULT_MAX_REJECT_RATE",
    "PRODUCTION_BASE_URL",
    "SANDBOX_URL_ENV",
    "AudienceSettings",
    "Credential",
    "DataTemplate",
    "Delivery",
    "Destination",
    "DestinationKind",
    "DestinationSettings",
    "DigitsId",
    "Environment",
    "EventSource",
    "ObjectName",
    "OfflineEventsSettings",
    "Orchestration",
    "PhoneFormat",
    "ResolvedAudienceSettings",
    "ResolvedOfflineEventsSettings",
    "ResolvedSettings",
    "Source",
    "SourceKind",
    "SyncMode",
    "UserIdType",
    "audience_name_warning",
    "check_strict_audience_name",
    "effective_audience_settings",
    "effective_offline_events_settings",
    "effective_settings",
    "format_validation_error",
    "resolve_base_url",
    "settings_model",
    "validate_settings",
]


# ---------------------------------------------------------------------------------------------------------
# Credentials and sources


class Credential(_Model):
    """How ttsync acts on a TikTok account. Secrets are `SecretStr`: reprs and JSON dumps redact them.

    `secret_env` remembers which environment variables a config file named for the secrets
    (e.g. {"access_token": "TIKTOK_ACCESS_TOKEN"}), so `ttsync export` can write them back.
    """

    name: ObjectName
    app_id: str = Field(min_length=1)
    app_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    token_expires_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    advertiser_ids: list[DigitsId] = Field(default_factory=list)
    redirect_uri: str | None = None
    environment: Environment = "sandbox"
    sandbox_base_url: str | None = None
    secret_env: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    def base_url(self) -> str:
        """The API base URL this credential talks to (see `resolve_base_url`)."""
        return resolve_base_url(self.environment, self.sandbox_base_url, None)


def resolve_base_url(environment: Environment, *sandbox_candidates: str | None) -> str:
    """Production is TikTok (ref §1); sandbox is the first configured emulator URL, else `$TTSYNC_SANDBOX_URL`."""
    if environment == "production":
        return PRODUCTION_BASE_URL
    for candidate in (*sandbox_candidates, os.environ.get(SANDBOX_URL_ENV)):
        if candidate:
            return candidate if candidate.endswith("/") else candidate + "/"
    raise ConfigError(
        "the sandbox environment needs the emulator's URL: set `sandbox_base_url` on the credential or "
        f"destination, or export {SANDBOX_URL_ENV} (for example http://127.0.0.1:8765/open_api/v1.3/ "
        "after `ttsync emulator serve`)"
    )


class Source(_Model):
    """A warehouse connection: a DuckDB file (default), a SQLAlchemy URL, or a CSV / Parquet file."""

    name: ObjectName
    kind: SourceKind = "duckdb"
    path: str | None = None
    url: str | None = None
    url_env: str | None = None
    table: str | None = None
    description: str = ""
    # Hash in the warehouse (docs/scale.md): the query is rewritten so only digests leave the warehouse.
    hash_in_warehouse: bool = False
    e164_columns: list[str] = Field(default_factory=list)  # phone columns the warehouse holds as +E164
    # Spark sources (docs/scale.md): the master URL (local[*], spark://..., yarn, sc://...) and Spark settings.
    master: str | None = None
    spark_conf: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_scale_fields(self) -> Source:
        if self.hash_in_warehouse and self.kind not in ("duckdb", "sqlalchemy"):
            raise ValueError(
                f"source {self.name!r}: hash_in_warehouse works on duckdb and sqlalchemy sources; a {self.kind} "
                "source is hashed by ttsync (remove hash_in_warehouse)"
            )
        if self.e164_columns and not self.hash_in_warehouse:
            raise ValueError(f"source {self.name!r}: e164_columns only applies with hash_in_warehouse: true")
        if (self.master or self.spark_conf) and self.kind != "spark":
            raise ValueError(f"source {self.name!r}: `master` and `spark_conf` are only for spark sources")
        return self

    @model_validator(mode="after")
    def _check_kind_fields(self) -> Source:
        if self.kind == "spark":
            if self.url or self.url_env:
                raise ValueError(f"source {self.name!r}: `url`/`url_env` are only for sqlalchemy sources")
            return self
        if self.kind == "sqlalchemy":
            if bool(self.url) == bool(self.url_env):
                raise ValueError(
                    f"source {self.name!r}: a sqlalchemy source needs exactly one of `url` or `url_env` "
                    "(use url_env when the URL holds a password)"
                )
            if self.url:
                try:
                    parsed = make_url(self.url)
                except ArgumentError as exc:
                    raise ValueError(
                        f"source {self.name!r}: `url` is not a SQLAlchemy URL "
                        "(expected dialect+driver://user@host/db)"
                    ) from exc
                if parsed.password:
                    raise ValueError(
                        f"source {self.name!r}: the URL contains a password; put the URL in an environment "
                        "variable and reference it with `url_env` instead"
                    )
            if self.path:
                raise ValueError(f"source {self.name!r}: `path` is only for duckdb, csv and parquet sources")
        else:
            if not self.path:
                raise ValueError(f"source {self.name!r}: a {self.kind} source needs `path` (a file path)")
            if self.url or self.url_env:
                raise ValueError(f"source {self.name!r}: `url`/`url_env` are only for sqlalchemy sources")
        if self.table is not None and self.kind not in ("csv", "parquet", "spark"):
            raise ValueError(f"source {self.name!r}: `table` only names CSV and Parquet files in SQL")
        return self

    def resolved_url(self) -> str:
        """The SQLAlchemy URL, read from the environment when `url_env` is used."""
        if self.url:
            return self.url
        assert self.url_env is not None
        value = os.environ.get(self.url_env)
        if not value:
            raise ConfigError(f"source {self.name!r}: environment variable {self.url_env} is not set")
        return value

    def resolved_path(self, root: Path) -> Path:
        """The file path, relative paths taken from the workspace root."""
        assert self.path is not None
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else root / path

    def table_name(self) -> str:
        """Name a CSV / Parquet file has in SQL: `table`, else the source name."""
        return self.table or self.name


# ---------------------------------------------------------------------------------------------------------
# Destinations, data templates, orchestrations


class Destination(_Model):
    """A TikTok target: credential + kind + settings + access flags + environment."""

    name: ObjectName
    kind: DestinationKind
    credential: ObjectName
    environment: Environment = "sandbox"
    settings: DestinationSettings
    admin_only: bool = False
    allow_restricted_pii: bool = False
    sandbox_base_url: str | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _settings_by_kind(cls, data: Any) -> Any:
        # Pick the settings model from `kind` explicitly: both models accept `{}`, so a plain union
        # would guess.
        if isinstance(data, dict):
            kind = data.get("kind")
            raw = data.get("settings") or {}
            if kind in ("audience", "offline_events") and isinstance(raw, dict):
                data = dict(data)
                data["settings"] = settings_model(kind).model_validate(raw)
        return data

    @model_validator(mode="after")
    def _settings_match_kind(self) -> Destination:
        if not isinstance(self.settings, settings_model(self.kind)):
            raise ValueError(f"destination {self.name!r}: settings do not belong to kind {self.kind!r}")
        return self

    def base_url(self, credential: Credential) -> str:
        """API base URL: TikTok for production; the emulator URL for sandbox."""
        return resolve_base_url(self.environment, self.sandbox_base_url, credential.sandbox_base_url)


class DataTemplate(_Model):
    """Per destination: attribute mapping, settings overrides, audience-name template, campaign availability."""

    name: ObjectName
    destination: ObjectName
    attribute_mapping: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    audience_name_template: str | None = None
    available_to_campaigns: bool = False
    admin_only: bool | None = None
    allow_restricted_pii: bool | None = None
    description: str = ""

    @field_validator("audience_name_template")
    @classmethod
    def _template_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = sorted(set(_NAME_TEMPLATE_FIELD.findall(value)) - {"campaign", "group", "date"})
        if unknown:
            raise ValueError(
                "audience_name_template may only use {campaign}, {group} and {date}; "
                f"remove {', '.join('{' + u + '}' for u in unknown)}"
            )
        return value

    @model_validator(mode="after")
    def _campaign_names(self) -> DataTemplate:
        template = self.audience_name_template or ""
        if self.available_to_campaigns and not ("{campaign}" in template and "{group}" in template):
            raise ValueError(
                f"data template {self.name!r} is available to campaigns, so its audience_name_template must "
                "use both {campaign} and {group}, for example '{campaign} - {group}'"
            )
        return self

    def render_audience_name(
        self, campaign: str | None, group: str | None, date: str | None = None
    ) -> str | None:
        """The audience name from the template, or None when it needs variables that were not given."""
        if self.audience_name_template is None:
            return None
        needs = set(_NAME_TEMPLATE_FIELD.findall(self.audience_name_template))
        values = {"campaign": campaign, "group": group, "date": date}
        if any(values[field] is None for field in needs):
            return None
        return self.audience_name_template.format(**{k: v for k, v in values.items() if v is not None})


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    fields = value.split()
    if len(fields) != 5:
        raise ValueError("schedule is a 5-field cron string, for example '0 6 * * *' (06:00 every day)")
    return " ".join(fields)


class Orchestration(_Model):
    """Query + source + destination + data template + settings required at orchestration + schedule."""

    name: ObjectName
    source: ObjectName
    destination: ObjectName
    template: ObjectName | None = None
    query: str = Field(min_length=1)
    key_column: str | None = Field(default=None, min_length=1)  # required for audiences
    settings: dict[str, Any] = Field(default_factory=dict)
    schedule: Annotated[str | None, AfterValidator(_check_cron)] = None
    enabled: bool = True
    description: str = ""


# ---------------------------------------------------------------------------------------------------------
# Merging settings


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
    merged: dict[str, Any] = destination.settings.model_dump(exclude_none=True)
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
