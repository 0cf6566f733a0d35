"""The `writeback:` block of `ttsync.yaml`: where a workflow's results are written back, and which tables.

The block is a workspace setting (kept in `state/writeback.json` by `ttsync apply`, like `retention`), with
per-orchestration overrides under `orchestrations:`. Without a `path` or `url`, the target is the
orchestration's own source database (a DuckDB file or a SQLAlchemy URL), in the schema `ttsync`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ttsync.workspace.errors import ConfigError
from ttsync.workspace.models import Source, format_validation_error

WRITEBACK_FILE = "writeback.json"
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


def resolve_target(
    config: WritebackConfig | None, orchestration: str, source: Source, root: Path
) -> WritebackTarget | None:
    """The write-back target of `orchestration`, or None when write-back is off for it."""
    if config is None:
        return None
    merged = config.model_dump(exclude={"orchestrations"}, exclude_none=True)
    override = config.orchestrations.get(orchestration)
    if override is not None:
        chosen = override.model_dump(exclude_none=True)
        if any(
            chosen.get(k) for k in ("path", "url", "url_env")
        ):  # a target of its own replaces the default's
            merged = {k: v for k, v in merged.items() if k not in ("path", "url", "url_env")}
        merged |= chosen
    settings = WritebackSettings.model_validate(merged)
    if not enabled_for(config, orchestration):
        return None
    schema = settings.schema_name or DEFAULT_SCHEMA
    tables = tuple(settings.tables) if settings.tables else ALL_TABLES
    if settings.path:
        path = Path(settings.path).expanduser()
        path = path if path.is_absolute() else root / path
        return WritebackTarget("duckdb", str(path), schema, tables, str(path))
    if settings.url:
        return WritebackTarget("sqlalchemy", settings.url, schema, tables, _safe_url(settings.url))
    if settings.url_env:
        return WritebackTarget(
            "sqlalchemy", _from_env(settings.url_env), schema, tables, f"${settings.url_env}"
        )
    # The default: the orchestration's own source database.
    if source.kind == "duckdb":
        path = source.resolved_path(root)
        return WritebackTarget("duckdb", str(path), schema, tables, str(path))
    if source.kind == "sqlalchemy":
        where = f"${source.url_env}" if source.url_env else _safe_url(source.url or "")
        return WritebackTarget("sqlalchemy", source.resolved_url(), schema, tables, where)
    raise ConfigError(
        f"write-back for orchestration {orchestration!r}: its source {source.name!r} is a {source.kind} file, "
        "which cannot hold tables: set `writeback.path` (a DuckDB file) or `writeback.url_env` in ttsync.yaml"
    )


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"write-back: environment variable {name} is not set: export the target's URL in it"
        )
    return value


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def save_writeback(state_dir: Path, config: WritebackConfig | None) -> None:
    """Keep the applied `writeback:` block in the state folder (read by runs and `ttsync export`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / WRITEBACK_FILE
    if config is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    tmp.write_text(json.dumps({"writeback": data}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_writeback(state_dir: Path) -> WritebackConfig | None:
    """The applied `writeback:` block, or None when write-back was never configured."""
    path = state_dir / WRITEBACK_FILE
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return WritebackConfig.model_validate(data["writeback"])
    except (ValueError, KeyError, TypeError) as exc:
        detail = format_validation_error(exc, str(path)) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(
            f"{path} is damaged ({detail}): run `ttsync apply -f ttsync.yaml` to write it again"
        ) from None
