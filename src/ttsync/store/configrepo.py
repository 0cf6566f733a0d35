"""The configuration tables' generic part: one `ConfigRepo` gets, lists and deletes every kind of object.

`save_*` stay per kind (`ttsync.store.objects`): each checks its own references and compares its own columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

from ttsync.errors import ConfigError, NotFoundError
from ttsync.store.db import Store
from ttsync.store.records import Change
from ttsync.store.rows import utc_now

M = TypeVar("M", bound=BaseModel)


def upsert(
    store: Store, table: sa.Table, name: str, values: dict[str, Any], same: Callable[[sa.RowMapping], bool]
) -> Change:
    with store.engine.begin() as conn:
        existing = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
        if existing is None:
            conn.execute(
                sa.insert(table).values(name=name, created_at=utc_now(), updated_at=utc_now(), **values)
            )
            return "created"
        if same(existing):
            return "unchanged"
        conn.execute(sa.update(table).where(table.c.name == name).values(updated_at=utc_now(), **values))
        return "updated"


def same_columns(values: dict[str, Any]) -> Callable[[sa.RowMapping], bool]:
    def same(row: sa.RowMapping) -> bool:
        return all(row[key] == value for key, value in values.items())

    return same


def get_row(store: Store, table: sa.Table, kind: str, name: str) -> sa.RowMapping:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(kind, name)
    return row


def list_rows(store: Store, table: sa.Table) -> Sequence[sa.RowMapping]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(table.c.name)).mappings().all()


def _delete(
    store: Store, table: sa.Table, kind: str, name: str, used_by: list[tuple[sa.Table, sa.Column[Any]]]
) -> bool:
    with store.engine.begin() as conn:
        for other, column in used_by:
            users = conn.execute(sa.select(other.c.name).where(column == name)).scalars().all()
            if users:
                raise ConfigError(
                    f"{kind} {name!r} is used by {other.name.rstrip('s').replace('_', ' ')} "
                    f"{', '.join(repr(u) for u in users)}: remove or change those first"
                )
        result = conn.execute(sa.delete(table).where(table.c.name == name))
        return result.rowcount > 0


@dataclass(frozen=True)
class ConfigRepo(Generic[M]):
    """Get, list and delete of one kind of configuration object, the same for every kind (`save_*` stay
    per kind: each checks its own references and compares its own columns)."""

    kind: str  # as users read it: "data template"
    table: sa.Table
    from_row: Callable[[Store, sa.RowMapping], M]
    # Who refers to an object of this kind: (table, column) pairs; such an object is not deleted.
    used_by: tuple[tuple[sa.Table, sa.Column[Any]], ...] = ()

    def get(self, store: Store, name: str) -> M:
        """The object `name`; `NotFoundError` when there is none."""
        return self.from_row(store, get_row(store, self.table, self.kind, name))

    def list(self, store: Store) -> list[M]:
        """All objects of this kind, by name."""
        return [self.from_row(store, row) for row in list_rows(store, self.table)]

    def delete(self, store: Store, name: str) -> bool:
        """Delete the object unless another one uses it (`ConfigError`); False when it did not exist."""
        return _delete(store, self.table, self.kind, name, list(self.used_by))


def validated(model: type[M]) -> Callable[[Store, sa.RowMapping], M]:
    """A row → model reader for tables whose columns are the model's fields (plus the timestamps)."""

    def from_row(_store: Store, row: sa.RowMapping) -> M:
        return model.model_validate({key: row[key] for key in row if key not in ("created_at", "updated_at")})

    return from_row


def model_rows(models: Sequence[M]) -> list[dict[str, Any]]:
    """JSON-safe dicts of models (secrets redacted) for `--json` output."""
    return [model.model_dump(mode="json") for model in models]
