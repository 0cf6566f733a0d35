"""Offline events: send an orchestration's events to TikTok's Events API once each.

The workflow's tasks:

    query             check the query runs and its columns make events (docs/events.md)
    verify_event_set  the offline event set exists on the advertiser (`offline/get/`)
    deliver           validate, drop what the ledger says TikTok already accepted, send in batches of 1,000,
                      record each confirmed batch in the ledger, write per-row outcomes

A retried `deliver` task starts over from the query: the ledger filters out every event TikTok confirmed, so
nothing is sent twice; the one batch that may have been in flight when a process died is dropped by TikTok's
48-hour de-duplication on (event set, event, event_id).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsync.events import EventOptions, EventTotals, Ledger, check_event_set, deliver_events, plan_events
from ttsync.events.columns import plan_columns
from ttsync.services.base import OrchestrationRun
from ttsync.sources import open_source
from ttsync.workflows.engine import TaskContext, TaskSpec
from ttsync.workspace.models import ResolvedOfflineEventsSettings

EVENT_TASKS = ("query", "verify_event_set", "deliver")


@dataclass(kw_only=True)
class EventsRun(OrchestrationRun):
    """Everything the tasks of one offline-events workflow need."""

    kind = "offline_events"
    settings: ResolvedOfflineEventsSettings

    def event_options(self) -> EventOptions:
        """Template mapping and settings the event pipeline needs beyond the resolved settings."""
        return EventOptions(
            attribute_mapping=dict(self.template.attribute_mapping) if self.template else {},
            derive_event_id=self.settings.derive_event_id,
            default_region=self.settings.default_region,
            key_hasher=self.key_hasher(),
        )

    def tasks(self) -> list[TaskSpec]:
        """The workflow's tasks in order."""
        return [
            TaskSpec("query", self.task_query),
            TaskSpec("verify_event_set", self.task_verify_event_set),
            TaskSpec("deliver", self.task_deliver),
        ]

    async def task_query(self, ctx: TaskContext) -> dict[str, Any]:
        """Check the query and that its columns make events, before reading any row."""
        with open_source(self.source, self.root) as source:
            columns = source.columns(self.orchestration.query)
        options = self.event_options()
        plan_columns(
            columns,
            key_column=self.orchestration.key_column,
            attribute_mapping=options.attribute_mapping,
            derive_event_id=options.derive_event_id,
        )
        for warning in self.settings.warnings():
            self.reporter.note(f"warning: {warning}")
        return {"columns": len(columns)}

    async def task_verify_event_set(self, ctx: TaskContext) -> dict[str, Any]:
        """The event set must exist before anything is sent."""
        async with self.client() as client:
            await check_event_set(client, self.settings)
        return {"event_set_id": self.settings.event_set_id}

    async def task_deliver(self, ctx: TaskContext) -> dict[str, Any]:
        """Validate, filter by the ledger, send, record."""
        run_dir = self.run_dir(ctx.workflow_id)
        self.reporter.stage("events")
        sent_so_far = 0

        def progress(totals: EventTotals) -> None:
            nonlocal sent_so_far
            self.reporter.advance("events", totals.sent - sent_so_far)
            sent_so_far = totals.sent

        with open_source(self.source, self.root) as source, Ledger.open(self.state_dir) as ledger:
            async with self.client() as client:
                result = await deliver_events(
                    client,
                    source.stream(self.orchestration.query, batch_rows=self.options.read_batch_rows),
                    settings=self.settings,
                    key_column=self.orchestration.key_column,
                    run_dir=run_dir,
                    ledger=ledger,
                    options=self.event_options(),
                    progress=progress,
                    run_id=ctx.workflow_id,
                    max_in_flight=self.options.in_flight,
                )
        totals = result.totals.to_dict()
        rejected = result.totals.rejected_total
        if rejected:
            self.reporter.note(
                f"{rejected:,} events were rejected (see `ttsync workflows show {ctx.workflow_id}`); the rest were sent"
            )
        return totals | {"outcomes_file": str(result.outcomes_path)}

    def preview(self) -> dict[str, Any]:
        """Counts by outcome without sending (no network call: the event set is not checked)."""
        work = Path(tempfile.mkdtemp(prefix="ttsync-plan-"))
        try:
            with open_source(self.source, self.root) as source, Ledger.open(self.state_dir) as ledger:
                result = plan_events(
                    source.stream(self.orchestration.query, batch_rows=self.options.read_batch_rows),
                    settings=self.settings,
                    key_column=self.orchestration.key_column,
                    run_dir=work,
                    ledger=ledger,
                    options=self.event_options(),
                )
            return {
                "orchestration": self.orchestration.name,
                "destination": self.destination.name,
                "event_set_id": self.settings.event_set_id,
                "totals": result.totals.to_dict(),
                "match_report": result.match_report.to_dict(),
                "warnings": list(self.settings.warnings()),
            }
        finally:
            shutil.rmtree(work, ignore_errors=True)
