"""Write one workflow's rows to a write-back target: migrate the schema, then delete + insert by workflow id.

All four tables of one workflow are replaced inside one transaction, so a reader sees either the previous
rows of a workflow or its new ones, never a mix, and writing the same workflow again (a retry, a resolve, a
write-back retry) leaves exactly one copy of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from ttsync.workspace.errors import ConfigError
from ttsync.writeback.config import ALL_TABLES, TableName, WritebackTarget
from ttsync.writeback.schema import MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION
from ttsync.writeback.target import TargetConnection


def current_version(conn: TargetConnection) -> int:
    """The schema version the target is at (0: no write-back tables yet)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {conn.prefix}{MIGRATIONS_TABLE} "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ, description TEXT)"
    )
    rows = conn.execute(f"SELECT max(version) FROM {conn.prefix}{MIGRATIONS_TABLE}")
    return int(rows[0][0] or 0)


def migrate(conn: TargetConnection, *, to_version: int = SCHEMA_VERSION) -> int:
    """Bring the target's write-back tables up to `to_version` (default: this ttsync's); returns the version
    it was at. Each migration commits with its row in the migrations table, under the target's writer lock
    (two workflows writing back at once migrate once)."""
    with conn.transaction():
        conn.lock()
        conn.create_schema()
        found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise ConfigError(
            f"the write-back tables are at schema version {found}, newer than this ttsync knows "
            f"({SCHEMA_VERSION}): upgrade ttsync, or set `writeback.schema` to another schema"
        )
    for migration in MIGRATIONS:
        if found < migration.version <= to_version:
            with conn.transaction():
                conn.lock()
                if current_version(conn) >= migration.version:  # another writer applied it meanwhile
                    continue
                for statement in migration.statements:
                    conn.execute(statement.replace("{s}", conn.prefix))
                conn.execute(
                    f"INSERT INTO {conn.prefix}{MIGRATIONS_TABLE} (version, applied_at, description) "
                    "VALUES (:version, :applied_at, :description)",
                    {"version": migration.version, "applied_at": datetime.now(UTC),
                     "description": migration.description},
                )  # fmt: skip
    return found


@dataclass(frozen=True)
class WorkflowRows:
    """The rows of one workflow for each write-back table (a table left out is not written)."""

    workflow_id: str
    tables: dict[TableName, pa.Table]
    superseded: tuple[str, ...] = ()  # earlier workflows this one superseded: their runs row says so


def write_rows(conn: TargetConnection, target: WritebackTarget, rows: WorkflowRows) -> dict[str, int]:
    """Replace the workflow's rows in every table `target` writes, in one transaction; rows written per table."""
    migrate(conn)
    written: dict[str, int] = {}
    with conn.transaction():
        conn.lock()
        for table in ALL_TABLES:
            if not target.wants(table):
                continue
            conn.execute(
                f"DELETE FROM {conn.prefix}{table} WHERE workflow_id = :workflow_id",
                {"workflow_id": rows.workflow_id},
            )
            data = rows.tables.get(table)
            written[table] = conn.insert(table, data) if data is not None and data.num_rows else 0
        if rows.superseded and target.wants("ttsync_runs"):
            for old in rows.superseded:
                conn.execute(
                    f"UPDATE {conn.prefix}ttsync_runs SET status = 'superseded' WHERE workflow_id = :workflow_id",
                    {"workflow_id": old},
                )
    return written
