"""Warehouse sources: open a configured source and stream query results as Arrow record batches.

from ttsync.sources import open_source
with open_source(source_config, root=workspace.root) as src:
    for batch in src.stream("SELECT ...", batch_rows=50_000):
        ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ttsync.config import models
from ttsync.errors import ConfigError
from ttsync.sources.base import DEFAULT_BATCH_ROWS, SOURCE_CONFIGURATION, Source, SourceError
from ttsync.sources.duckdb_source import DuckDBSource
from ttsync.sources.guard import SOURCE_DIRS_ENV, allowed_roots, check_source_path
from ttsync.sources.spark_source import SparkSource, open_spark_source
from ttsync.sources.sqlalchemy_source import SQLAlchemySource

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "SOURCE_DIRS_ENV",
    "DuckDBSource",
    "SQLAlchemySource",
    "Source",
    "SourceError",
    "SparkSource",
    "open_source",
]


def open_source(
    source: models.Source,
    root: Path | None = None,
    *,
    allowed_dirs: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Source:
    """Open `source`; relative file paths are taken from `root` (the workspace folder, default: cwd), a URL
    given by `url_env` from `environ` (default: the process environment).

    A file path must resolve inside `root`, a folder of `$TTSYNC_SOURCE_DIRS` or of `allowed_dirs`
    (see `ttsync.sources.guard`); queries must be one read-only SELECT."""
    base = root if root is not None else Path.cwd()
    if source.kind == "sqlalchemy":
        try:
            url = source.resolved_url(os.environ if environ is None else environ)
        except ConfigError as exc:
            raise SourceError(str(exc), resolution_key=SOURCE_CONFIGURATION) from None
        return SQLAlchemySource.open(source.name, url)
    if source.kind == "spark":  # pyspark (an optional extra) is imported only when a session starts
        return open_spark_source(source, base)
    path = check_source_path(source.name, source.resolved_path(base), allowed_roots(base, allowed_dirs))
    if source.kind == "duckdb":
        return DuckDBSource.open_database(source.name, path)
    assert source.kind in ("csv", "parquet")
    return DuckDBSource.open_file(source.name, path, source.kind, source.table_name())
