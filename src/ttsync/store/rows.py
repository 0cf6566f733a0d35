"""Row helpers every store module shares: UTC timestamps, and `UNSET` for "leave this column as it is".

SQLite drops the zone of a timestamp; every timestamp the store writes is UTC, so reading puts it back.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


class Unset(enum.Enum):
    """The type of `UNSET`: an update argument left out (None would mean "clear this column")."""

    UNSET = enum.auto()


UNSET = Unset.UNSET


def utc_now() -> datetime:
    """The current time, in UTC (what every stored timestamp is)."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """`value` with its UTC zone put back (SQLite drops it); None and aware values unchanged."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def utc_row(row: sa.RowMapping) -> dict[str, Any]:
    """A row as a dict, its timestamps in UTC."""
    return {key: as_utc(value) if isinstance(value, datetime) else value for key, value in row.items()}
