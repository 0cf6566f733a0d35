"""Domain models of a workspace: credentials, sources, destinations, data templates, orchestrations.

Plain pydantic models: no I/O (the environment is an argument), no destination's rules. The store persists
them (`ttsync.store.repos`), the config file (`ttsync.config.file`) declares them. A destination's settings
are a plain mapping here: its wing validates them and merges destination <- data template <- orchestration
settings into what a run uses (`ttsync.destinations.tiktok.settings.effective_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ttsync.config.common import (
    _NAME_TEMPLATE_FIELD,
    DestinationKind,
    Environment,
    ObjectName,
    SourceKind,
    _Model,
)
from ttsync.errors import ConfigError

__all__ = [
    "Credential",
    "DataTemplate",
    "Destination",
    "DestinationKind",
    "Environment",
    "ObjectName",
    "Orchestration",
    "Source",
    "SourceKind",
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
    advertiser_ids: list[str] = Field(default_factory=list)  # checked as the destination's ids on apply
    redirect_uri: str | None = None
    environment: Environment = "sandbox"
    sandbox_base_url: str | None = None
    secret_env: dict[str, str] = Field(default_factory=dict)
    description: str = ""


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
    # Where a spark source's audience snapshots live: a Hadoop URI (file://, hdfs://, s3a://, abfss://, gs://)
    # read and written by Spark; default: the workspace's state folder.
    snapshot_uri: str | None = None

    @model_validator(mode="after")
    def _check_scale_fields(self) -> Source:
        if self.hash_in_warehouse and self.kind not in ("duckdb", "sqlalchemy"):
            raise ValueError(
                f"source {self.name!r}: hash_in_warehouse works on duckdb and sqlalchemy sources; a {self.kind} "
                "source is hashed by ttsync (remove hash_in_warehouse)"
            )
        if self.e164_columns and not self.hash_in_warehouse:
            raise ValueError(f"source {self.name!r}: e164_columns only applies with hash_in_warehouse: true")
        if (self.master or self.spark_conf or self.snapshot_uri) and self.kind != "spark":
            raise ValueError(
                f"source {self.name!r}: `master`, `spark_conf` and `snapshot_uri` are only for spark sources"
            )
        if self.snapshot_uri is not None and "://" not in self.snapshot_uri:
            raise ValueError(
                f"source {self.name!r}: snapshot_uri must be a URI with a scheme (file:///srv/ttsync/snapshots, "
                "s3a://bucket/ttsync/snapshots, ...); leave it out to keep snapshots in the workspace"
            )
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

    def resolved_url(self, environ: Mapping[str, str]) -> str:
        """The SQLAlchemy URL, read from `environ` (the process environment) when `url_env` is used."""
        if self.url:
            return self.url
        assert self.url_env is not None
        value = environ.get(self.url_env)
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
    """A destination: credential + kind + settings + access flags + environment.

    `settings` is the mapping as written; the destination's wing validates it against the kind (on apply, on
    save, and when a run is built: `ttsync.destinations.tiktok.settings`)."""

    name: ObjectName
    kind: DestinationKind
    credential: ObjectName
    environment: Environment = "sandbox"
    settings: dict[str, Any] = Field(default_factory=dict)
    admin_only: bool = False
    allow_restricted_pii: bool = False
    sandbox_base_url: str | None = None
    description: str = ""


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


def _catch_up(value: object) -> object:
    """`latest` and `skip` (the words of `ttsync serve --catch-up`) as true and false."""
    if isinstance(value, str) and value.strip().lower() in ("latest", "skip"):
        return value.strip().lower() == "latest"
    if value is not None and not isinstance(value, bool):
        raise ValueError(
            "catch_up is true (or latest: run once a schedule missed while no server ran) or false"
        )
    return value


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
    # A schedule missed while no server ran: run it once when the server starts (true) or skip it (false);
    # unset: as `ttsync serve --catch-up` says.
    catch_up: Annotated[bool | None, BeforeValidator(_catch_up)] = None
    enabled: bool = True
    description: str = ""
