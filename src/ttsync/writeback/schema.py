"""The write-back tables and their migrations (docs/writeback.md describes every column).

The target holds a small table `ttsync_schema_migrations` (version, applied_at, description). Each migration
is a list of statements in the SQL that DuckDB and PostgreSQL (and SQLite) share; `{s}` is replaced by the
schema prefix. A target at an older version is migrated forward when ttsync writes to it; never backward.
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = "ttsync_schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One step of the write-back schema."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the four write-back tables",
        (
            """CREATE TABLE IF NOT EXISTS {s}ttsync_runs (
                workflow_id TEXT NOT NULL, orchestration TEXT NOT NULL, campaign TEXT, kind TEXT NOT NULL,
                status TEXT NOT NULL, resolution TEXT, failed_task TEXT, error_message TEXT,
                created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
                duration_seconds DOUBLE PRECISION, rows_read BIGINT, warnings BIGINT, task_counts TEXT)""",
            """CREATE TABLE IF NOT EXISTS {s}ttsync_audience_syncs (
                workflow_id TEXT NOT NULL, orchestration TEXT NOT NULL, destination TEXT NOT NULL,
                advertiser_id TEXT, shared_advertiser_ids TEXT, audience_id TEXT, audience_name TEXT,
                mode TEXT, delivery TEXT, size_before BIGINT, size_after BIGINT, people BIGINT,
                adds BIGINT, removes BIGINT, added_confirmed BIGINT, removed_confirmed BIGINT,
                deferred BIGINT, rejected BIGINT, rejected_by_reason TEXT, tiktok_size BIGINT,
                is_valid BOOLEAN, match_rate DOUBLE PRECISION)""",
            """CREATE TABLE IF NOT EXISTS {s}ttsync_row_outcomes (
                workflow_id TEXT NOT NULL, orchestration TEXT NOT NULL, row_key TEXT,
                identifier_type TEXT, identifier_column TEXT, status TEXT NOT NULL, reason TEXT)""",
            """CREATE TABLE IF NOT EXISTS {s}ttsync_event_outcomes (
                workflow_id TEXT NOT NULL, orchestration TEXT NOT NULL, row_key TEXT,
                status TEXT NOT NULL, reason TEXT, message TEXT)""",
        ),
    ),
    Migration(
        2,
        "when each workflow was written and by which ttsync; each event row's event and event id",
        (
            "ALTER TABLE {s}ttsync_runs ADD COLUMN written_at TIMESTAMPTZ",
            "ALTER TABLE {s}ttsync_runs ADD COLUMN ttsync_version TEXT",
            "ALTER TABLE {s}ttsync_event_outcomes ADD COLUMN event TEXT",
            "ALTER TABLE {s}ttsync_event_outcomes ADD COLUMN event_id TEXT",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
