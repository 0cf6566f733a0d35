"""Control-plane tables (SQLAlchemy Core). This is the schema after all migrations in `migrations.py`.

Columns holding secrets end in `_enc` and contain Fernet tokens, never plaintext.
Timestamps are stored in UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

NAME = sa.String(80)
TS = sa.DateTime(timezone=True)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", TS, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("app_id", sa.String(64), nullable=False),
    sa.Column("app_secret_enc", sa.Text),
    sa.Column("access_token_enc", sa.Text),
    sa.Column("refresh_token_enc", sa.Text),
    sa.Column("token_expires_at", TS),
    sa.Column("refresh_token_expires_at", TS),
    sa.Column("advertiser_ids", sa.JSON, nullable=False),
    sa.Column("redirect_uri", sa.Text),
    sa.Column("environment", sa.String(16), nullable=False),
    sa.Column("sandbox_base_url", sa.Text),
    sa.Column("secret_env", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

destinations = sa.Table(
    "destinations",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("credential", NAME, sa.ForeignKey("credentials.name"), nullable=False),
    sa.Column("environment", sa.String(16), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("admin_only", sa.Boolean, nullable=False, default=False),
    sa.Column("allow_restricted_pii", sa.Boolean, nullable=False, default=False),
    sa.Column("sandbox_base_url", sa.Text),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

data_templates = sa.Table(
    "data_templates",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("destination", NAME, sa.ForeignKey("destinations.name"), nullable=False),
    sa.Column("attribute_mapping", sa.JSON, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("audience_name_template", sa.Text),
    sa.Column("available_to_campaigns", sa.Boolean, nullable=False, default=False),
    sa.Column("admin_only", sa.Boolean),
    sa.Column("allow_restricted_pii", sa.Boolean),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

orchestrations = sa.Table(
    "orchestrations",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("source", NAME, sa.ForeignKey("sources.name"), nullable=False),
    sa.Column("destination", NAME, sa.ForeignKey("destinations.name"), nullable=False),
    sa.Column("template", NAME, sa.ForeignKey("data_templates.name")),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("key_column", sa.String(200)),  # optional for offline events (positional keys)
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("schedule", sa.String(100)),
    sa.Column("catch_up", sa.Boolean),  # None: the server's --catch-up (migration 7)
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("orchestration", NAME, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),  # succeeded_with_warnings needs more than 16
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("checkpoint", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
)

# Pages of workflows newest first (the API's list, 10,000s of rows) and the reaper's look for running ones,
# without reading and sorting every workflow (migration 7).
SERVER_READ_INDEXES = (
    sa.Index("ix_workflows_created_at_id", workflows.c.created_at.desc(), workflows.c.id),
    sa.Index("ix_workflows_state", workflows.c.state),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("workflow_id", sa.String(40), sa.ForeignKey("workflows.id"), primary_key=True),
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("checkpoint", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
)

# Migration 8, for the web UI's lists over many workflows: each orchestration's newest workflows, the newest
# workflows of all, and the offline-event deliveries of a date window.
WORKFLOW_INDEXES = (
    sa.Index("ix_workflows_orchestration_created", workflows.c.orchestration, workflows.c.created_at),
    sa.Index("ix_workflows_created", workflows.c.created_at),
    sa.Index("ix_tasks_name_finished", tasks.c.name, tasks.c.finished_at),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", sa.String(40), index=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("resolution", sa.String(80)),
    sa.Column("read", sa.Boolean, nullable=False, default=False),
    sa.Column("webhook_state", sa.String(16)),
    sa.Column("webhook_attempts", sa.Integer, nullable=False, default=0),
)

audience_state = sa.Table(
    "audience_state",
    metadata,
    sa.Column("destination", NAME, primary_key=True),
    sa.Column("orchestration", NAME, primary_key=True),
    sa.Column("advertiser_id", sa.String(32), primary_key=True),
    sa.Column("audience_id", sa.String(64), nullable=False),
    sa.Column("audience_name", sa.Text, nullable=False),
    sa.Column("last_size", sa.BigInteger),
    sa.Column("is_valid", sa.Boolean),
    sa.Column("checked_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

# One row per resource ("orchestration:NAME", "audience:ADVERTISER:ID") that a workflow is running on.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("resource", sa.String(200), primary_key=True),
    sa.Column("workflow_id", sa.String(40), nullable=False),
    sa.Column("holder_pid", sa.Integer, nullable=False),
    sa.Column("holder_host", sa.String(255), nullable=False),
    sa.Column("acquired_at", TS, nullable=False),
    sa.Column("heartbeat_at", TS, nullable=False),
)

# ---------------------------------------------------------------------------------------------------------
# The team server (`ttsync serve`): users, API tokens, sessions, the audit log, the run queue, schedules and
# the server's own settings (its cookie-signing key). Added by migration 4.

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, never the password
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("restricted_pii", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_name", NAME, sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 of a 256-bit token
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_used_at", TS),
    sa.Column("revoked_at", TS),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the session id in the cookie
    sa.Column("user_name", NAME, sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False, index=True),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

run_queue = sa.Table(
    "run_queue",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("orchestration", NAME, nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # run, retry, resolve, restart
    sa.Column("workflow_id", sa.String(40), nullable=False, index=True),
    sa.Column("requested_by", sa.String(120), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # api, schedule
    sa.Column("state", sa.String(16), nullable=False, index=True),  # queued, running, done, refused, lost
    sa.Column("requested_at", TS, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.Column("holder_pid", sa.Integer),
    sa.Column("holder_host", sa.String(255)),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("detail", sa.Text),
    # Added by migration 11: what the row runs (an orchestration, or a campaign: then `orchestration` holds
    # the campaign's name) and a campaign run's day (its launch/end gating and one-time audience names).
    sa.Column("kind", sa.String(16), nullable=False, default="orchestration", server_default="orchestration"),
    sa.Column("run_day", sa.Date),
)

schedule_state = sa.Table(
    "schedule_state",
    metadata,
    sa.Column("orchestration", NAME, primary_key=True),
    sa.Column("cron", sa.String(100), nullable=False),
    sa.Column("next_run_at", TS),
    sa.Column("last_run_at", TS),
    sa.Column("last_outcome", sa.Text),
    sa.Column("updated_at", TS, nullable=False),
)

# The schedule state of campaigns (migration 11): as `schedule_state`, keyed by the campaign.
campaign_schedule_state = sa.Table(
    "campaign_schedule_state",
    metadata,
    sa.Column("campaign", NAME, primary_key=True),
    sa.Column("cron", sa.String(100), nullable=False),
    sa.Column("next_run_at", TS),
    sa.Column("last_run_at", TS),
    sa.Column("last_outcome", sa.Text),
    sa.Column("updated_at", TS, nullable=False),
)

server_settings = sa.Table(
    "server_settings",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


# Segments and campaigns (config.campaigns): the validated model as JSON, one row per object. Added by migration 5.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
