"""Quoting for SQL text that ttsync builds for DuckDB (paths, id schema names, column names)."""

from __future__ import annotations

from pathlib import Path


def sql_literal(value: str | Path) -> str:
    """`value` as a single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
