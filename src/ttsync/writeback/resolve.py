"""Where a workflow's results are written back: the `writeback:` block resolved for one orchestration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ttsync.config.models import Source
from ttsync.config.writeback import (
    ALL_TABLES,
    DEFAULT_SCHEMA,
    WritebackConfig,
    WritebackSettings,
    WritebackTarget,
    enabled_for,
)
from ttsync.errors import ConfigError


def resolve_target(
    config: WritebackConfig | None,
    orchestration: str,
    source: Source,
    root: Path,
    environ: Mapping[str, str] | None = None,
) -> WritebackTarget | None:
    """The write-back target of `orchestration`, or None when write-back is off for it. URLs given by
    variable are read from `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
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
            "sqlalchemy", _from_env(env, settings.url_env), schema, tables, f"${settings.url_env}"
        )
    # The default: the orchestration's own source database.
    if source.kind == "duckdb":
        path = source.resolved_path(root)
        return WritebackTarget("duckdb", str(path), schema, tables, str(path))
    if source.kind == "sqlalchemy":
        where = f"${source.url_env}" if source.url_env else _safe_url(source.url or "")
        return WritebackTarget("sqlalchemy", source.resolved_url(env), schema, tables, where)
    raise ConfigError(
        f"write-back for orchestration {orchestration!r}: its source {source.name!r} is a {source.kind} file, "
        "which cannot hold tables: set `writeback.path` (a DuckDB file) or `writeback.url_env` in ttsync.yaml"
    )


def _from_env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
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
