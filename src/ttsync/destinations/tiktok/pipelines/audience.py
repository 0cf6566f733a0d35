"""The main job: keep a TikTok custom audience equal to a warehouse query (partner Segment API).

One run is a workflow of named tasks (see `AUDIENCE_TASKS`):

    query            check the query runs and which columns feed which identifiers
    prepare          stream the query through the identity rules into hashes (Parquet, no raw PII)
    verify_audience  find the stored audience in TikTok; create (cap-checked) or recreate it; share it
    plan             diff the new set against the snapshot (DuckDB); stop if the remove guard trips
    upload           send removes then adds in checkpointed batches within the rate limits
    commit           replace the snapshot, now that TikTok confirmed every batch
    read_back        read the audience's size and validity back and store them with the run

Tasks pass results through files in the run folder and their checkpoints in the store, so a retried or
resolved workflow continues in a new process exactly where the failed one stopped.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ttsync.destinations.tiktok.audience.audience import (
    MIN_USABLE_SIZE,
    PROCESSING_STATE,
    audience_status,
    clear_create_intent,
    create_once,
    create_partner_audience,
    deliver_until_ready,
    share_audience,
)
from ttsync.destinations.tiktok.audience.customer_file import (
    single_calculate_type,
)
from ttsync.destinations.tiktok.audience.deliver import MappingCheckpoint, PartnerDelivery, in_flight_for
from ttsync.destinations.tiktok.client import RateLimits
from ttsync.destinations.tiktok.pipelines.audience_base import rejects_by_reason
from ttsync.destinations.tiktok.pipelines.audience_steps import AudienceRunSteps
from ttsync.destinations.tiktok.pipelines.base import Reporter, RunOptions
from ttsync.errors import ConfigError, LargeRemovalBlockedError
from ttsync.identity.coltypes import Role, check_schema
from ttsync.sources import open_source
from ttsync.sync.inflight import clear_inflight, inflight_files
from ttsync.sync.plan import AudiencePlan, SyncMode, commit_plan_snapshot, connect, plan_audience
from ttsync.sync.snapshot import delete_snapshot, distinct_ids
from ttsync.workflows.crashpoints import crash_point
from ttsync.workflows.engine import TaskContext, TaskSpec

AUDIENCE_TASKS = ("query", "prepare", "verify_audience", "plan", "upload", "commit", "read_back")

__all__ = ["AUDIENCE_TASKS", "AudienceRun", "Reporter", "RunOptions"]


@dataclass(kw_only=True)
class AudienceRun(AudienceRunSteps):
    """Everything the tasks of one audience workflow need."""

    # -- tasks -------------------------------------------------------------------------------------------

    def tasks(self) -> list[TaskSpec]:
        """The workflow's tasks in order."""
        return [
            TaskSpec("query", self.task_query),
            TaskSpec("prepare", self.task_prepare),
            TaskSpec("verify_audience", self.task_verify_audience),
            TaskSpec("plan", self.task_plan),
            TaskSpec("upload", self.task_upload, in_dry_run=False),
            TaskSpec("commit", self.task_commit, in_dry_run=False),
            TaskSpec("read_back", self.task_read_back, in_dry_run=False),
        ]

    async def task_query(self, ctx: TaskContext) -> dict[str, Any]:
        """Check the query and the identifier columns before reading any row."""
        with open_source(self.source, self.root) as source:
            columns = source.columns(self.orchestration.query)
            schema = source.schema(self.orchestration.query)
        if self.key_column not in columns:
            raise ConfigError(
                f"the query returns no key column {self.key_column!r}: add it to the SELECT or fix `key_column` "
                f"on orchestration {self.orchestration.name!r}; the query returns: {', '.join(columns)}"
            )
        specs = self.column_specs(columns)
        if schema is not None:  # types known without reading rows: refuse unreadable columns now
            roles: dict[str, Role] = {self.key_column: "key"}
            roles |= {s.region_column: "region" for s in specs if s.region_column}
            roles |= {s.column: "identifier" for s in specs}
            check_schema(schema, roles)
        ctx.shared["columns"] = columns
        for warning in self.settings.warnings():
            self._warn(ctx, warning, key="settings")
        return {"columns": len(columns), "identifier_columns": [s.column for s in specs]}

    async def task_prepare(self, ctx: TaskContext) -> dict[str, Any]:
        """Stream the query through the identity rules into Parquet files of hashes."""
        run_dir = self.run_dir(ctx.workflow_id)
        specs, output = self._prepare(run_dir / "prepared", ctx.shared.get("columns"))
        report = output.report.to_dict()
        (run_dir / "match_report.json").write_text(
            json.dumps(report, indent=2, default=str), encoding="utf-8"
        )
        ctx.shared["match_report"] = report
        ctx.shared["id_schemas"] = self.id_schemas(specs)
        if ctx.dry_run:  # the plan shows rejects by reason; its temporary folder is gone once it returns
            ctx.shared["rejected_by_reason"] = rejects_by_reason(output.rejects_path)
        reject_warning = self.reject_rate_warning(output.report.to_dict())
        if reject_warning:
            self._warn(ctx, reject_warning, serious=True, resolution="invalid_rows", key="reject_rate")
        return {
            "rows_read": output.rows_read,
            "identifiers": output.ids_written,
            "rejected_values": output.rejects_written,
            "id_schemas": self.id_schemas(specs),
            "match_report": report,
        }

    async def task_verify_audience(self, ctx: TaskContext) -> dict[str, Any]:
        """Reuse the stored audience if TikTok still has it; otherwise create (or recreate) it. In a dry run:
        only look (see `_look_up_audience`)."""
        advertiser = self.primary_advertiser
        stored = self._stored_state()
        if ctx.dry_run:
            return await self._look_up_audience(ctx, stored)
        created = recreated = False
        async with self.client() as client:
            audience_id: str | None = None
            if stored is not None and SyncMode(self.settings.mode) is not SyncMode.CREATE:
                status = await audience_status(client, advertiser, stored.audience_id)
                if status.usable:
                    audience_id = stored.audience_id
                else:
                    recreated = True
                    why = "expired" if status.expired else "no longer exists"
                    self._notify(
                        ctx,
                        "warning",
                        f"audience {stored.audience_id} {why} in TikTok; ttsync creates a new one and uploads "
                        "everyone again",
                    )
                    delete_snapshot(self.snapshot_file(stored.audience_id))
                    if (remote := self._spark_snapshot(stored.audience_id)) is not None:
                        remote.delete()
                    # Nothing sent to the lost audience can linger in the new one.
                    clear_inflight(inflight_files(self.inflight_dir))
            if audience_id is not None:
                self._hold_audience(audience_id)
            if self.customer_file:
                # A customer-file audience is created with its first files, by the upload task.
                self._save_state_if(audience_id)
                ctx.shared["audience_id"] = audience_id
                return {"audience_id": audience_id, "created": False, "recreated": recreated}
            if audience_id is None:
                audience_id = ctx.checkpoint.get("created_audience_id")  # created by an earlier attempt
            if audience_id is None:
                name = self.settings.audience_name
                audience_id, adopted = await create_once(
                    client,
                    advertiser,
                    name,
                    self.create_intent_path,
                    lambda: create_partner_audience(client, advertiser, name),
                )
                crash_point("create:sent")
                created = True
                # Store the id at once: a crash from here on must reuse this audience, never make another.
                ctx.save_checkpoint({"created_audience_id": audience_id})
                self._save_state(audience_id, None, None)
                clear_create_intent(self.create_intent_path)
                self._hold_audience(audience_id)
                how = "adopted the audience an earlier attempt created" if adopted else "created audience"
                self.reporter.note(f"{how} {audience_id} on advertiser {advertiser}")
            if len(self.settings.advertiser_ids) > 1 and (created or not ctx.checkpoint.get("shared")):
                await share_audience(client, advertiser, audience_id, self.settings.advertiser_ids)
                ctx.save_checkpoint(ctx.checkpoint | {"shared": True})
        self._save_state(audience_id, None, None)
        ctx.shared["audience_id"] = audience_id
        return {"audience_id": audience_id, "created": created, "recreated": recreated}

    async def task_plan(self, ctx: TaskContext) -> dict[str, Any]:
        """Diff against the snapshot; stop before sending when the remove guard trips."""
        audience_id = self._audience_id(ctx, required=not (self.customer_file or ctx.dry_run))
        run_dir = self.run_dir(ctx.workflow_id)
        id_schemas = ctx.shared.get("id_schemas") or ctx.output_of("prepare")["id_schemas"]
        if self.customer_file:
            single_calculate_type(id_schemas)
        max_change = None
        remote = self._spark_snapshot(audience_id) if audience_id else None
        if self.change_cap is not None and remote is not None and remote.current() is not None:
            max_change = self.change_cap(remote.distinct_ids(tuple(id_schemas)))
        elif self.change_cap is not None and audience_id and self.snapshot_file(audience_id).exists():
            max_change = self.change_cap(distinct_ids(self.snapshot_file(audience_id), id_schemas))
        # What unfinished workflows may have sent counts too, unless a dry run found the run will start a new
        # audience (a real run clears those records when it recreates one; a dry run only leaves them out).
        inflight = [] if ctx.shared.get("new_audience") else inflight_files(self.inflight_dir)
        if self.source.kind == "spark" and self.source.snapshot_uri and (inflight or max_change is not None):
            raise ConfigError(
                f"source {self.source.name!r}: snapshots on snapshot_uri are diffed by Spark only, and this run "
                "needs the DuckDB diff (in-flight records of an interrupted upload, or a campaign's change cap); "
                "remove snapshot_uri for this run, or let the interrupted workflow finish (`ttsync retry`)"
            )
        if (
            self.source.kind == "spark" and not inflight and max_change is None
        ):  # the diff in Spark (docs/scale.md)
            plan = self._plan_on_spark(run_dir, audience_id, id_schemas)
        else:
            # In-flight records to reconcile (a rare recovery) and a campaign's change cap are DuckDB's, over
            # the same prepared file.
            con = connect(run_dir / "plan", memory_limit=self.options.duckdb_memory_limit)
            try:
                plan = plan_audience(
                    con,
                    prepared_glob=str(run_dir / "prepared" / "ids.parquet"),
                    digests_path=run_dir / "prepared" / "digests.parquet",
                    snapshot=self.snapshot_file(audience_id) if audience_id else None,
                    id_schemas=id_schemas,
                    mode=SyncMode(self.settings.mode),
                    work_dir=run_dir / "plan",
                    inflight=inflight,
                    max_change=max_change,
                )
            finally:
                con.close()
        if plan.deferred_adds or plan.deferred_removes:
            self._warn(
                ctx,
                f"learning-phase guard: {plan.deferred_adds:,} adds and {plan.deferred_removes:,} removes "
                f"deferred to later syncs (at most {max_change or 0:,} changes per sync)",
            )
        guard = self.settings.remove_guard
        if plan.remove_share > guard and ctx.dry_run:
            self._warn(
                ctx,
                f"the run would remove {plan.remove_share:.0%} of the audience, above the remove guard of "
                f"{guard:.0%}: it will stop before sending",
                key="remove_guard",
            )
        elif plan.remove_share > guard and not self.options.allow_large_removal:
            raise LargeRemovalBlockedError(
                f"this run would remove {plan.remove_ids:,} of {plan.previous_ids:,} identifiers "
                f"({plan.remove_share:.0%}), above the remove guard of {guard:.0%}"
            )
        # A new plan id on every planning: an upload's progress and in-flight record belong to one plan.
        ctx.save_checkpoint({"plan": plan.to_state(), "plan_id": uuid.uuid4().hex})
        near = self.remove_guard_warning(plan.remove_share)
        if near:
            self._warn(ctx, near, key="remove_guard")
        if plan.current_people < MIN_USABLE_SIZE and ctx.dry_run:
            self._warn(
                ctx,
                f"only {plan.current_people:,} people: TikTok needs at least {MIN_USABLE_SIZE:,} before an ad "
                "group can use the audience",
                key="min_size",
            )
        elif plan.current_people < MIN_USABLE_SIZE:
            self._warn(
                ctx,
                f"the audience has {plan.current_people:,} people; TikTok needs at least "
                f"{MIN_USABLE_SIZE:,} before an ad group can use it",
                serious=True,
            )
        return plan.to_dict()

    async def task_upload(self, ctx: TaskContext) -> dict[str, Any]:
        """Send the plan in checkpointed batches (removes first, then adds)."""
        plan_id = ctx.checkpoint_of("plan").get("plan_id")
        if ctx.checkpoint.get("plan_id") != plan_id:
            # Planned again since (`retry --task plan`): the progress of the earlier plan means nothing now;
            # its in-flight record stays, and the new plan already reconciles it.
            ctx.save_checkpoint({"plan_id": plan_id})
        if self.customer_file:
            return await self._upload_customer_file(ctx)
        audience_id = self._audience_id(ctx)
        plan = self._plan(ctx)
        stored = ctx.checkpoint.get("mapping") or {}
        # A resumed upload keeps the batch size it started with: batch numbers only mean something with it.
        batch_rows = int(stored.get("batch_rows") or self.options.batch_rows)
        checkpoint = MappingCheckpoint.from_json(stored, audience_id, batch_rows)
        run_dir = self.run_dir(ctx.workflow_id)
        con = connect(run_dir / "upload", memory_limit=self.options.duckdb_memory_limit)
        self.reporter.stage("upload", plan.remove_ids + plan.add_ids)
        # Enough requests in flight to keep the configured pace (the run's own setting if larger).
        in_flight = in_flight_for((self.options.rate_limits or RateLimits()).segment, self.options.in_flight)
        try:
            # The delivery reads and builds its first body meanwhile: the in-flight record and the client
            # come first, since nothing may be sent before the record is stored.
            with PartnerDelivery(con, plan, checkpoint, in_flight=in_flight) as delivery:
                self._record_inflight(ctx, con, plan)
                async with self.client(in_flight) as client:
                    # No wait for `is_valid` first: TikTok validates a partner audience only after members
                    # arrive (an empty one reads is_valid false a day after creation, ref §9), so mappings go
                    # right after create. A brand-new audience may still answer "not ready" for a minute or
                    # two (ref §7): `deliver_until_ready` resumes from the checkpoint until
                    # `ready_timeout_seconds`.

                    async def send(
                        *, action: str, advertiser_ids: Any, id_schema: Any, batch_data_json: bytes
                    ) -> None:
                        await client.segment_mapping_json(
                            action="add" if action == "add" else "delete",
                            advertiser_ids=list(advertiser_ids),
                            id_schema=list(id_schema),
                            batch_data_json=batch_data_json,
                        )

                    counts = await deliver_until_ready(
                        lambda: delivery.send_all(
                            send=send,
                            advertiser_ids=[self.primary_advertiser],
                            save_checkpoint=lambda cp: self._save_mapping(ctx, cp),
                            progress=lambda _phase, n: self.reporter.advance("upload", n),
                        ),
                        timeout_seconds=self.options.ready_timeout_seconds,
                    )
        finally:
            con.close()
        return counts.to_dict()

    async def task_commit(self, ctx: TaskContext) -> dict[str, Any]:
        """Replace the snapshot: every batch of the plan was confirmed by TikTok."""
        audience_id = self._audience_id(ctx)
        plan = self._plan(ctx)
        path = self.snapshot_file(audience_id)
        remote = self._spark_snapshot(audience_id)
        if remote is not None:  # written by Spark to the source's snapshot_uri (docs/scale.md)
            size = remote.commit(plan)
        else:
            size = commit_plan_snapshot(
                plan,
                path,
                self.run_dir(ctx.workflow_id) / "commit",
                memory_limit=self.options.duckdb_memory_limit,
            )
        crash_point("commit:snapshot")
        # TikTok now equals this plan: what the records it reconciled (and its own) may have sent is settled.
        upload = ctx.checkpoint_of("upload")
        clear_inflight(
            [*plan.inflight, *([upload["inflight_record"]] if upload.get("inflight_record") else [])]
        )
        return {"snapshot_ids": size}

    async def task_read_back(self, ctx: TaskContext) -> dict[str, Any]:
        """Read size and validity back from TikTok and store them with the run."""
        audience_id = self._audience_id(ctx)
        plan = self._plan(ctx)
        async with self.client() as client:
            status = await audience_status(client, self.primary_advertiser, audience_id)
        self._save_state(audience_id, status.cover_num, status.is_valid)
        # Not valid yet is a state, not a failure: TikTok matches a partner audience's members over time
        # (up to ~10 hours, ref §9), and the next run or `ttsync status` reads it again.
        state = "ready" if status.is_valid else PROCESSING_STATE
        if not status.is_valid:
            self.reporter.note(f"audience {audience_id}: {PROCESSING_STATE}")
        ids_sent = self._ids_ever_sent(ctx, plan)
        if status.cover_num is not None and ids_sent is not None and status.cover_num > ids_sent:
            # Nothing this workspace sent can make the audience bigger than the snapshot (which holds every id
            # it ever sent and kept there): someone else writes to it, or the id now names another audience.
            self._warn(
                ctx,
                f"audience {audience_id} holds {status.cover_num:,} in TikTok, more than the {ids_sent:,} "
                "identifiers this workspace ever sent to it: it is shared with another sender or the id was "
                "reused (e.g. a sandbox restarted without --state); check it in TikTok Ads Manager",
                serious=True,
            )
        # TikTok's size counts matched people; a size above the people sent means the size is counted some
        # other way (the emulator counts identifiers), and a ratio would be meaningless.
        match_rate = (
            round(status.cover_num / plan.current_people, 4)
            if status.cover_num and plan.current_people and status.cover_num <= plan.current_people
            else None
        )
        return {
            "audience_id": audience_id,
            "tiktok_size": status.cover_num,
            "is_valid": status.is_valid,
            "state": state,
            "people_sent": plan.current_people,
            "ids_sent": ids_sent,
            "match_rate": match_rate,
        }

    def _ids_ever_sent(self, ctx: TaskContext, plan: AudiencePlan) -> int | None:
        """Identifiers in the committed snapshot: in every mode, all this workspace sent and did not remove."""
        committed = ctx.output_of("commit").get("snapshot_ids")
        if isinstance(committed, int):
            return committed
        return plan.current_ids if SyncMode(self.settings.mode) is SyncMode.MIRROR else None
