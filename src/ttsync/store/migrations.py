"""Numbered schema migrations, applied in order when a store is opened, recorded in `schema_version`.

Rules for adding one: append a `Migration` with the number you were given; never edit an applied migration;
every migration not recorded in a store is applied, in list order (so each must be safe on a store that
already has the later ones);
keep `schema.py` equal to the schema after the last migration (the store tests check that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from ttsync.store import schema


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    version: int
    description: str
    apply: Callable[[sa.Connection], None]


_V1_TABLES = [
    schema.credentials,
    schema.sources,
    schema.destinations,
    schema.data_templates,
    schema.orchestrations,
    schema.workflows,
    schema.tasks,
    schema.notifications,
    schema.audience_state,
]


def _v1_initial(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=_V1_TABLES)


def _v2_wider_workflow_state(conn: sa.Connection) -> None:
    # `succeeded_with_warnings` is 23 characters. SQLite does not enforce VARCHAR lengths.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE workflows ALTER COLUMN state TYPE VARCHAR(32)"))


def _v3_leases(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.leases])


def _v4_server(conn: sa.Connection) -> None:
    tables = [
        schema.users,
        schema.api_tokens,
        schema.sessions,
        schema.audit_log,
        schema.run_queue,
        schema.schedule_state,
        schema.server_settings,
    ]
    schema.metadata.create_all(conn, tables=tables)


def _v5_campaigns(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.segments, schema.campaigns])


def _v7_server_reads(conn: sa.Connection) -> None:
    # A store made at version 1 by this ttsync already has them: `create_all` makes the tables as `schema`
    # describes them now, with their indexes and every column.
    for index in schema.SERVER_READ_INDEXES:
        index.create(conn, checkfirst=True)
    columns = {column["name"] for column in sa.inspect(conn).get_columns("orchestrations")}
    if "catch_up" not in columns:
        conn.execute(sa.text("ALTER TABLE orchestrations ADD COLUMN catch_up BOOLEAN"))


def _v8_workflow_indexes(conn: sa.Connection) -> None:
    # `checkfirst`: a store created after the indexes joined the schema got them with its tables (v1).
    for index in schema.WORKFLOW_INDEXES:
        index.create(conn, checkfirst=True)


def _v11_campaign_runs(conn: sa.Connection) -> None:
    # A store created after this change already has both (`create_all` of v4 makes `run_queue` as now).
    columns = {column["name"] for column in sa.inspect(conn).get_columns("run_queue")}
    if "kind" not in columns:
        conn.execute(
            sa.text("ALTER TABLE run_queue ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'orchestration'")
        )
    if "run_day" not in columns:
        conn.execute(sa.text("ALTER TABLE run_queue ADD COLUMN run_day DATE"))
    schema.metadata.create_all(conn, tables=[schema.campaign_schedule_state])


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "control plane: credentials, sources, destinations, templates, orchestrations, workflows",
        _v1_initial,
    ),
    Migration(2, "workflow state: room for succeeded_with_warnings", _v2_wider_workflow_state),
    Migration(3, "leases: one active workflow per orchestration and per audience", _v3_leases),
    Migration(4, "team server: users, API tokens, sessions, audit log, run queue, schedules", _v4_server),
    Migration(5, "segments and campaigns", _v5_campaigns),
    Migration(
        7,
        "workflows: indexes for pages newest first and for running ones; orchestrations: catch_up",
        _v7_server_reads,
    ),
    Migration(8, "indexes for the web UI's workflow lists and event days", _v8_workflow_indexes),
    Migration(11, "campaign runs in the server's queue, and campaign schedules", _v11_campaign_runs),
]

# The highest, not the last: numbers are handed out to parallel branches, merged in any order.
LATEST_VERSION = max(m.version for m in MIGRATIONS)

# Arbitrary constant: the key of the Postgres advisory lock that serializes concurrent migrators.
_PG_MIGRATION_LOCK = 7_417_001


def current_version(conn: sa.Connection) -> int:
    """Highest applied migration number, 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    value = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(value or 0)


def migrate(engine: sa.Engine) -> list[int]:
    """Apply pending migrations in one transaction (all or none); return the versions applied now."""
    applied: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        schema.metadata.create_all(conn, tables=[schema.schema_version])
        version = current_version(conn)
        if version > LATEST_VERSION:
            raise RuntimeError(
                f"the store is at schema version {version}, newer than this ttsync ({LATEST_VERSION}): "
                "upgrade ttsync"
            )
        # Every migration not recorded yet, not only those above the highest: numbers are handed out to
        # branches worked on in parallel, so a store may hold 8 before a branch's 7 is merged.
        done = set(conn.execute(sa.select(schema.schema_version.c.version)).scalars())
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            migration.apply(conn)
            conn.execute(
                sa.insert(schema.schema_version).values(
                    version=migration.version, description=migration.description, applied_at=datetime.now(UTC)
                )
            )
            applied.append(migration.version)
    return applied
