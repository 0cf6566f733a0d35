"""Which SQL a source runs when it hashes in the warehouse (`hash_in_warehouse: true`, docs/scale.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ttsync.config import models
from ttsync.errors import ConfigError
from ttsync.identity import ColumnSpec
from ttsync.identity.pushdown import PushdownQuery, PushdownRefused, dialect_for_sqlalchemy, pushdown_query


def source_dialect(source: models.Source) -> str:
    """The SQL dialect of a DuckDB or SQLAlchemy source, from its kind or URL (no connection is made)."""
    if source.kind == "duckdb":
        return "duckdb"
    try:
        backend = make_url(source.resolved_url(os.environ)).get_backend_name()
    except ArgumentError:
        raise ConfigError(f"source {source.name!r}: the URL is not a SQLAlchemy URL") from None
    try:
        return dialect_for_sqlalchemy(backend)
    except PushdownRefused as exc:
        raise ConfigError(f"source {source.name!r}: {exc}") from None


def warehouse_query(
    source: models.Source,
    query: str,
    specs: Sequence[ColumnSpec],
    key_column: str,
    schema: pa.Schema | None = None,
) -> PushdownQuery | None:
    """The rewritten query that hashes `specs` in the warehouse, or None when the source does not push down.

    A column the warehouse cannot hash by the documented rules is a `ConfigError` that says how to fix it.
    `schema`: the query's column types when the source knows them (list columns are refused)."""
    if not source.hash_in_warehouse:
        return None
    for spec in specs:
        index = schema.get_field_index(spec.column) if schema is not None else -1
        if schema is not None and index >= 0 and pa.types.is_list(schema.field(index).type):
            raise ConfigError(
                f"source {source.name!r} (hash_in_warehouse): column {spec.column!r} is a list; multi-value cells "
                "cannot be hashed in the warehouse: unnest it in the query (one row per value, same key) or "
                "remove hash_in_warehouse from the source"
            )
    try:
        return pushdown_query(
            query,
            specs,
            key_column=key_column,
            dialect=source_dialect(source),
            e164_columns=source.e164_columns,
        )
    except PushdownRefused as exc:
        raise ConfigError(f"source {source.name!r} (hash_in_warehouse): {exc}") from None
