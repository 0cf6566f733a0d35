"""Pydantic records of the run-time tables: workflows, tasks, notifications, audience state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# `interrupted`: its process died (no live lease) while it ran; `superseded`: a newer run of the orchestration
# replaced it, so it can no longer be retried (its plan is stale).
WorkflowState = Literal[
    "pending",
    "running",
    "waiting",
    "blocked",
    "succeeded",
    "succeeded_with_warnings",
    "failed",
    "cancelled",
    "interrupted",
    "superseded",
]
TaskState = Literal["pending", "running", "waiting", "succeeded", "failed", "skipped", "interrupted"]
Severity = Literal["info", "warning", "error"]
Change = Literal["created", "updated", "unchanged"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskRecord(_Record):
    """One named step of a workflow, with its checkpoint (what TikTok already confirmed)."""

    workflow_id: str
    name: str
    position: int
    state: TaskState
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    checkpoint: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class WorkflowRecord(_Record):
    """One run of an orchestration (or campaign)."""

    id: str
    orchestration: str
    kind: str
    state: WorkflowState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    checkpoint: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    tasks: list[TaskRecord] = Field(default_factory=list)


class NotificationRecord(_Record):
    """An alert raised by a workflow."""

    id: int
    workflow_id: str | None
    created_at: datetime
    severity: Severity
    title: str
    message: str
    resolution: str | None = None
    read: bool = False
    webhook_state: str | None = None
    webhook_attempts: int = 0


class AudienceStateRecord(_Record):
    """Which TikTok audience an orchestration writes to on one advertiser, and what TikTok last said of it."""

    destination: str
    orchestration: str
    advertiser_id: str
    audience_id: str
    audience_name: str
    last_size: int | None = None
    is_valid: bool | None = None
    checked_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class LeaseRecord(_Record):
    """Who runs the one active workflow of a resource (an orchestration or a TikTok audience)."""

    resource: str
    workflow_id: str
    holder_pid: int
    holder_host: str
    acquired_at: datetime
    heartbeat_at: datetime
