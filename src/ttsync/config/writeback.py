"""The `writeback:` block of `ttsync.yaml`: where a workflow's results are written back, and which tables.

The block is a workspace setting (kept in `state/writeback.json` by `ttsync apply`: `ttsync.writeback.stored`), with
per-orchestration overrides under `orchestrations:`. Without a `path` or `url`, the target is the
orchestration's own source database (a DuckDB file or a SQLAlchemy URL), in the schema `ttsync`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SCHEMA = "ttsync"
TableName = Literal["ttsync_runs", "ttsync_audience_syncs", "ttsync_row_outcomes", "ttsync_event_outcomes"]
ALL_TABLES: tuple[TableName, ...] = (
    "ttsync_runs",
    "ttsync_audience_syncs",
    "ttsync_row_outcomes",
    "ttsync_event_outcomes",
)
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WritebackSettings(BaseModel):
    """One level of write-back settings (the workspace's, or one orchestration's override); unset fields
    fall back to the level above."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool | None = None
    path: str | None = None  # a DuckDB file (relative paths start at the workspace folder)
    url: str | None = None  # a SQLAlchemy URL without a password
    url_env: str | None = None  # an environment variable holding the URL (for URLs with a password)
    schema_name: str | None = Field(default=None, alias="schema")
    tables: list[TableName] | None = None

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEMA_NAME.match(value):
            raise ValueError("schema is a plain SQL name: letters, digits and '_', for example 'ttsync'")
        return value

    @field_validator("url_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("url_env is the *name* of an environment variable, for example WAREHOUSE_URL")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> WritebackSettings:
        if sum(1 for v in (self.path, self.url, self.url_env) if v) > 1:
            raise ValueError("give one target: `path` (a DuckDB file), `url` or `url_env` (SQLAlchemy)")
        if self.url:
            try:
                parsed = make_url(self.url)
            except ArgumentError:
                raise ValueError(
                    "`url` is not a SQLAlchemy URL (expected dialect+driver://user@host/db)"
                ) from None
            if parsed.password:
                raise ValueError(
                    "the URL contains a password; put the URL in an environment variable and use `url_env`"
                )
        return self


class WritebackConfig(WritebackSettings):
    """The workspace's `writeback:` block: defaults for every orchestration, and per-orchestration overrides."""

    orchestrations: dict[str, WritebackSettings] = Field(default_factory=dict)


@dataclass(frozen=True)
class WritebackTarget:
    """Where one orchestration's results go: a DuckDB file or a SQLAlchemy URL, a schema and the tables."""

    kind: Literal["duckdb", "sqlalchemy"]
    location: str  # the DuckDB path, or the SQLAlchemy URL (read from the environment when given by variable)
    schema: str
    tables: tuple[TableName, ...]
    described: str  # for messages: a path, or the URL's variable name / URL without credentials

    def wants(self, table: TableName) -> bool:
        """Whether `table` is written."""
        return table in self.tables


def enabled_for(config: WritebackConfig | None, orchestration: str) -> bool:
    """Whether write-back is on for `orchestration` (its target is resolved, and checked, when it runs)."""
    if config is None:
        return False
    override = config.orchestrations.get(orchestration)
    if override is not None and override.enabled is not None:
        return override.enabled
    return config.enabled is not False
