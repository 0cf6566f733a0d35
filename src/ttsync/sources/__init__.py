"""Warehouse sources: open a configured source and stream query results as Arrow record batches.

from ttsync.sources import open_source
with open_source(source_config, root=workspace.root) as src:
    for batch in src.stream("SELECT ...", batch_rows=50_000):
        ...
"""

from __future__ import annotations

from pathlib import Path

from ttsync.sources.base import DEFAULT_BATCH_ROWS, SOURCE_CONFIGURATION, Source, SourceError
from ttsync.sources.duckdb_source import DuckDBSource
from ttsync.sources.sqlalchemy_source import SQLAlchemySource
from ttsync.workspace import models
from ttsync.workspace.errors import ConfigError

__all__ = ["DEFAULT_BATCH_ROWS", "DuckDBSource", "SQLAlchemySource", "Source", "SourceError", "open_source"]


def open_source(source: models.Source, root: Path | None = None) -> Source:
    """Open `source`; relative file paths are taken from `root` (the workspace folder, default: cwd)."""
    base = root if root is not None else Path.cwd()
    if source.kind == "sqlalchemy":
        try:
            url = source.resolved_url()
        except ConfigError as exc:
            raise SourceError(str(exc), resolution_key=SOURCE_CONFIGURATION) from None
        return SQLAlchemySource.open(source.name, url)
    path = source.resolved_path(base)
    if source.kind == "duckdb":
        return DuckDBSource.open_database(source.name, path)
    return DuckDBSource.open_file(source.name, path, source.kind, source.table_name())
