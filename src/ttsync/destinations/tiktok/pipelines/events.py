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

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttsync.destinations.tiktok.events import (
    EventOptions,
    check_event_set,
    deliver_events,
    deliver_staged,
    event_rules,
    plan_events,
    plan_staged,
)
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.errors import ConfigError
from ttsync.events import EventTotals, Ledger, ledger_namespace
from ttsync.events.columns import plan_columns
from ttsync.events.validate import check_event_schema
from ttsync.sources import SparkSource, open_source
from ttsync.spark.events import SparkStagedEvents, stage_events_on_spark
from ttsync.workflows.engine import TaskContext, TaskSpec

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
            # A dry run (`run --plan`) makes no network call: the event set is not checked.
            TaskSpec("verify_event_set", self.task_verify_event_set, in_dry_run=False),
            TaskSpec("deliver", self.task_deliver),
        ]

    async def task_query(self, ctx: TaskContext) -> dict[str, Any]:
        """Check the query and that its columns make events, before reading any row."""
        self._refuse_pushdown()
        with open_source(self.source, self.root) as source:
            columns = source.columns(self.orchestration.query)
            schema = source.schema(self.orchestration.query)
        options = self.event_options()
        plan = plan_columns(
            columns,
            key_column=self.orchestration.key_column,
            attribute_mapping=options.attribute_mapping,
            derive_event_id=options.derive_event_id,
        )
        if schema is not None:  # types known without reading rows: refuse unreadable columns now
            check_event_schema(plan, schema, self.orchestration.key_column)
        for warning in self.settings.warnings():
            self._warn(ctx, warning)
        return {"columns": len(columns)}

    async def task_verify_event_set(self, ctx: TaskContext) -> dict[str, Any]:
        """The event set must exist before anything is sent."""
        async with self.client() as client:
            await check_event_set(client, self.settings)
        return {"event_set_id": self.settings.event_set_id}

    async def task_deliver(self, ctx: TaskContext) -> dict[str, Any]:
        """Validate, filter by the ledger, send, record. In a dry run: validate and filter, send nothing."""
        if ctx.dry_run:
            return self._plan_events(ctx)
        run_dir = self.run_dir(ctx.workflow_id)
        self.reporter.stage("events")
        sent_so_far = 0

        def progress(totals: EventTotals) -> None:
            nonlocal sent_so_far
            self.reporter.advance("events", totals.sent - sent_so_far)
            sent_so_far = totals.sent

        with open_source(self.source, self.root) as source, Ledger.open(self.state_dir) as ledger:
            async with self.client() as client:
                if isinstance(source, SparkSource):  # validated and grouped on the executors (docs/scale.md)
                    await check_event_set(client, self.settings)
                    result = await deliver_staged(
                        client,
                        self._stage_on_spark(source, run_dir, ledger),
                        settings=self.settings,
                        run_dir=run_dir,
                        ledger=ledger,
                        progress=progress,
                        run_id=ctx.workflow_id,
                        max_in_flight=self.options.in_flight,
                    )
                else:
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
        warning = self.reject_warning(result.totals)
        if warning is not None:
            message, serious = warning
            self._warn(ctx, message, serious=serious, resolution="invalid_rows" if serious else None)
        return totals | {"outcomes_file": str(result.outcomes_path)}

    def reject_warning(self, totals: EventTotals) -> tuple[str, bool] | None:
        """(warning, serious) when events were rejected: serious above `max_reject_rate`; None when none were."""
        rejected = totals.rejected_total
        if not rejected:
            return None
        share = rejected / totals.events if totals.events else 1.0
        limit = self.settings.max_reject_rate
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in totals.rejected.most_common())
        message = f"{rejected:,} of {totals.events:,} events ({share:.1%}) were rejected ({reasons}); the rest were sent"
        if share > limit:
            message += f"; more than max_reject_rate {limit:.0%}"
        return message, share > limit

    def _warn(
        self, ctx: TaskContext, message: str, *, serious: bool = False, resolution: str | None = None
    ) -> None:
        """A warning: shown now on a terminal, and stored with the task for every other output. A dry run
        (`run --plan`) prints its warnings itself, with the plan."""
        if not ctx.dry_run:
            self.reporter.note(f"warning: {message}")
        ctx.warn(message, serious=serious, resolution=resolution)

    def _refuse_pushdown(self) -> None:
        """A source whose promise offline events cannot keep is refused before anything is read (docs/scale.md)."""
        if self.source.hash_in_warehouse:
            # Offline events are validated and hashed by ttsync: the raw rows would leave the warehouse.
            raise ConfigError(
                f"source {self.source.name!r} has hash_in_warehouse: true, which applies to audiences only; "
                "offline events are validated and hashed by ttsync. Use another source (without "
                "hash_in_warehouse) for orchestration " + repr(self.orchestration.name)
            )

    def preview(self) -> dict[str, Any]:
        """Counts by outcome without sending: the workflow's own tasks in a dry run (no network call: the event
        set is not checked)."""
        results = self.dry_run()
        deliver = results["deliver"]
        return {
            "orchestration": self.orchestration.name,
            "destination": self.destination.name,
            "event_set_id": self.settings.event_set_id,
            "totals": deliver.counts["totals"],
            "match_report": deliver.counts["match_report"],
            "warnings": [str(w["message"]) for result in results.values() for w in result.warnings],
        }

    def _plan_events(self, ctx: TaskContext) -> dict[str, Any]:
        """The dry run of `deliver`: what would be sent, rejected or skipped by the ledger."""
        run_dir = self.run_dir(ctx.workflow_id)
        with open_source(self.source, self.root) as source, Ledger.open(self.state_dir) as ledger:
            if isinstance(source, SparkSource):
                staged = self._stage_on_spark(source, run_dir, ledger)
                result = plan_staged(staged, settings=self.settings, run_dir=run_dir, ledger=ledger)
            else:
                result = plan_events(
                    source.stream(self.orchestration.query, batch_rows=self.options.read_batch_rows),
                    settings=self.settings,
                    key_column=self.orchestration.key_column,
                    run_dir=run_dir,
                    ledger=ledger,
                    options=self.event_options(),
                )
        if (warning := self.reject_warning(result.totals)) is not None:
            self._warn(ctx, warning[0])
        return {"totals": result.totals.to_dict(), "match_report": result.match_report.to_dict()}

    def _stage_on_spark(self, source: SparkSource, run_dir: Path, ledger: Ledger) -> SparkStagedEvents:
        """Validation, hashing, grouping and the ledger anti-join on Spark's executors (ttsync.spark.events)."""
        options = self.event_options()
        rules = event_rules(self.settings, options)
        frame = source.dataframe(self.orchestration.query)
        plan = plan_columns(
            frame.columns,
            key_column=self.orchestration.key_column,
            attribute_mapping=options.attribute_mapping,
            derive_event_id=rules.derive_event_id,
        )
        assert options.key_hasher is not None  # event_options always has the workspace's
        return stage_events_on_spark(
            frame,
            plan=plan,
            rules=rules,
            key_column=self.orchestration.key_column,
            run_dir=run_dir,
            ledger=ledger,
            namespace=ledger_namespace(self.settings.event_set_id, self.settings.test_event_code),
            key_hasher=options.key_hasher,
            now=datetime.now(UTC),
        )
