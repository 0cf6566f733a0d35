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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import duckdb

from ttsync.destinations.tiktok.audience.audience import (
    MIN_USABLE_SIZE,
    PROCESSING_STATE,
    AudienceStatus,
    audience_count,
    audience_status,
    clear_create_intent,
    create_once,
    create_partner_audience,
    deliver_until_ready,
    share_audience,
)
from ttsync.destinations.tiktok.audience.customer_file import (
    CustomerFileOptions,
    deliver_customer_file,
    single_calculate_type,
)
from ttsync.destinations.tiktok.audience.deliver import MappingCheckpoint, deliver_partner
from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.destinations.tiktok.oauth.clients import CHECK_RETRY
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun, Reporter, RunOptions
from ttsync.destinations.tiktok.schemas import ID_SCHEMAS, MD5_SCHEMAS
from ttsync.destinations.tiktok.settings import ResolvedAudienceSettings
from ttsync.errors import ConfigError, LargeRemovalBlockedError, ResolvableError
from ttsync.identity import ColumnSpec
from ttsync.identity.coltypes import Role, check_schema
from ttsync.identity.pushdown import PushdownPreparer
from ttsync.sources import Source, open_source
from ttsync.sources.pushdown import warehouse_query
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.leases import audience_resource
from ttsync.store.records import AudienceStateRecord
from ttsync.sync.columns import audience_column_specs
from ttsync.sync.inflight import clear_inflight, inflight_dir, inflight_files, record_inflight
from ttsync.sync.plan import AudiencePlan, SyncMode, commit_plan_snapshot, connect, plan_audience
from ttsync.sync.prepare import PreparedOutput, prepare_to_parquet
from ttsync.sync.snapshot import delete_snapshot, distinct_ids, snapshot_path

if TYPE_CHECKING:
    from ttsync.spark.snapshot import SparkSnapshot
from ttsync.workflows.crashpoints import crash_point
from ttsync.workflows.engine import TaskContext, TaskSpec
from ttsync.workflows.ownership import hold

# The kinds of warning of a dry run (`TaskContext.warn(key=...)`), in the order `run --plan` shows them.
_PREVIEW_WARNING_ORDER = ("settings", "audience_check", "remove_guard", "reject_rate", "min_size")

AUDIENCE_TASKS = ("query", "prepare", "verify_audience", "plan", "upload", "commit", "read_back")

__all__ = ["AUDIENCE_TASKS", "AudienceRun", "Reporter", "RunOptions"]


@dataclass(kw_only=True)
class AudienceRun(OrchestrationRun):
    """Everything the tasks of one audience workflow need."""

    kind = "audience"
    settings: ResolvedAudienceSettings
    warehouse_sql: str | None = None  # the query as rewritten by hash_in_warehouse, once prepared

    @property
    def key_column(self) -> str:
        """The column that identifies a person (required for audiences; checked when the run is built)."""
        if not self.orchestration.key_column:
            raise ConfigError(f"orchestration {self.orchestration.name!r} needs `key_column` for an audience")
        return self.orchestration.key_column

    @property
    def primary_advertiser(self) -> str:
        """The advertiser that owns the audience; the others get it shared."""
        return self.settings.advertiser_ids[0]

    def id_schemas(self, specs: list[ColumnSpec]) -> list[str]:
        """The id schema of each user id type the destination allows, in its order.

        Also the types this query has no column for: their identifiers in the snapshot are then removed
        (mirror), so dropping a column from a query converges like dropping rows."""
        md5_kinds = {spec.kind.upper() for spec in specs if spec.hash_state == "md5"}
        return [
            MD5_SCHEMAS[t] if t in md5_kinds and t in MD5_SCHEMAS else ID_SCHEMAS[t]
            for t in self.settings.user_id_types
        ]

    def column_specs(self, columns: list[str]) -> list[ColumnSpec]:
        """Identifier column specs from the template's attribute mapping (or column names)."""
        mapping = self.template.attribute_mapping if self.template else {}
        return audience_column_specs(
            user_id_types=self.settings.user_id_types,
            mapping=mapping,
            columns=columns,
            default_region=self.settings.default_region,
            phone_format=self.settings.phone_format,
        )

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
        try:
            self._record_inflight(ctx, con, plan)
            async with self.client() as client:
                # No wait for `is_valid` first: TikTok validates a partner audience only after members arrive
                # (an empty one reads is_valid false a day after creation, ref §9), so mappings go right after
                # create. A brand-new audience may still answer "not ready" for a minute or two (ref §7):
                # `deliver_until_ready` resumes from the checkpoint until `ready_timeout_seconds`.

                async def send(
                    *, action: str, advertiser_ids: Any, id_schema: Any, batch_data_json: str
                ) -> None:
                    await client.segment_mapping_json(
                        action="add" if action == "add" else "delete",
                        advertiser_ids=list(advertiser_ids),
                        id_schema=list(id_schema),
                        batch_data_json=batch_data_json,
                    )

                counts = await deliver_until_ready(
                    lambda: deliver_partner(
                        con,
                        plan,
                        send=send,
                        advertiser_ids=[self.primary_advertiser],
                        checkpoint=checkpoint,
                        save_checkpoint=lambda cp: self._save_mapping(ctx, cp),
                        progress=lambda _phase, n: self.reporter.advance("upload", n),
                        in_flight=self.options.in_flight,
                    ),
                    timeout_seconds=self.options.ready_timeout_seconds,
                )
        finally:
            con.close()
        return counts.to_dict()

    async def _upload_customer_file(self, ctx: TaskContext) -> dict[str, Any]:
        """Customer-file delivery: hashed CSV files, upload, create or update with an explicit action."""
        plan = self._plan(ctx)
        run_dir = self.run_dir(ctx.workflow_id)
        con = connect(run_dir / "upload", memory_limit=self.options.duckdb_memory_limit)
        self.reporter.stage(
            "upload", plan.current_ids if plan.full_upload else plan.add_ids + plan.remove_ids
        )
        try:
            self._record_inflight(ctx, con, plan)
            async with self.client() as client:
                result = await deliver_customer_file(
                    client,
                    con,
                    plan,
                    advertiser_ids=self.settings.advertiser_ids,
                    audience_id=self._audience_id(ctx, required=False),
                    audience_name=self.settings.audience_name,
                    retention_in_days=self.settings.retention_days,
                    work_dir=run_dir / "customer_file",
                    checkpoint=ctx.checkpoint.get("customer_file"),
                    save_checkpoint=lambda cp: ctx.save_checkpoint(ctx.checkpoint | {"customer_file": cp}),
                    options=CustomerFileOptions(ready_timeout_seconds=self.options.ready_timeout_seconds),
                    progress=lambda step, n: self.reporter.advance("upload", n) if step == "upload" else None,
                    create_intent=self.create_intent_path,
                )
        finally:
            con.close()
        self._save_state(result.audience_id, None, None)
        clear_create_intent(self.create_intent_path)
        ctx.shared["audience_id"] = result.audience_id
        for warning in result.warnings:
            self._warn(ctx, warning, serious=True)
        counts = result.to_dict()
        counts.pop("checkpoint", None)
        return counts

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

    def preview(self) -> dict[str, Any]:
        """What a run would do, sending nothing and changing nothing: adds, removes, rejects by reason, the
        match-quality report and warnings. The workflow's own tasks in a dry run (`query` to `plan`); reads the
        stored audience's status from TikTok when it can."""
        shared: dict[str, Any] = {}
        results = self.dry_run(shared)  # the prepared files are gone after it: rejects are counted inside
        warnings = [w for result in results.values() for w in result.warnings]
        # The order `run --plan` has always printed: settings, the audience check, the remove guard, rejects.
        warnings.sort(key=lambda w: _PREVIEW_WARNING_ORDER.index(w.get("key", "settings")))
        prepared = results["prepare"].counts
        return {
            "orchestration": self.orchestration.name,
            "destination": self.destination.name,
            "audience_name": self.settings.audience_name,
            "advertiser_ids": self.settings.advertiser_ids,
            "audience": results["verify_audience"].counts,
            "rows_read": prepared["rows_read"],
            "plan": results["plan"].counts,
            "rejected_by_reason": shared["rejected_by_reason"],
            "match_report": prepared["match_report"],
            "warnings": [str(w["message"]) for w in warnings],
            "warehouse_sql": self.warehouse_sql,
        }

    async def _look_up_audience(self, ctx: TaskContext, stored: AudienceStateRecord | None) -> dict[str, Any]:
        """The dry run of `verify_audience`: look the stored audience up in TikTok, create nothing. Its counts
        are the plan's `audience` (`exists` None when TikTok could not be asked)."""
        audience: dict[str, Any] = {"audience_id": None, "exists": False}
        if stored is None or SyncMode(self.settings.mode) is SyncMode.CREATE:
            # A create-mode run starts another audience: nothing in flight to the stored one counts.
            ctx.shared["new_audience"] = stored is not None
            # "New" is only true if TikTok answered: check the advertiser is reachable at all.
            try:
                await self._audience_count()
            except Exception as exc:
                audience = {"audience_id": None, "exists": None, "check_error": type(exc).__name__}
                self._warn(
                    ctx,
                    f"could not check TikTok ({type(exc).__name__}): the run creates the audience if TikTok "
                    "has none for this orchestration",
                    key="audience_check",
                )
            return audience
        audience = {"audience_id": stored.audience_id, "exists": None}
        try:
            status = await self._status(stored.audience_id)
        except Exception as exc:  # the plan still shows the diff; the run itself will report the error
            audience["check_error"] = type(exc).__name__
            self._warn(
                ctx,
                f"could not check audience {stored.audience_id} in TikTok: {type(exc).__name__}",
                key="audience_check",
            )
            ctx.shared["audience_id"] = stored.audience_id
            return audience
        audience = {
            "audience_id": stored.audience_id,
            "exists": status.usable,
            "tiktok_size": status.cover_num,
        }
        if status.usable:
            ctx.shared["audience_id"] = stored.audience_id
        else:
            ctx.shared["new_audience"] = True
            self._warn(
                ctx,
                f"audience {stored.audience_id} is gone from TikTok: the run will create a new one and upload "
                "everyone",
                key="audience_check",
            )
        return audience

    def _check_client(self) -> AsyncTikTokClient:
        # A plan only looks: a couple of quick retries, not a run's minute of backoff when TikTok is down.
        saved = self.options
        self.options = replace(saved, retry=CHECK_RETRY)
        try:
            return self.client()
        finally:
            self.options = saved

    async def _audience_count(self) -> int:
        async with self._check_client() as client:
            return await audience_count(client, self.primary_advertiser)

    async def _status(self, audience_id: str) -> AudienceStatus:
        async with self._check_client() as client:
            return await audience_status(client, self.primary_advertiser, audience_id)

    # -- helpers -------------------------------------------------------------------------------------------

    def _prepare(
        self, out_dir: Path, columns: list[str] | None = None
    ) -> tuple[list[ColumnSpec], PreparedOutput]:
        """Stream the query through the identity rules into `out_dir` (hashes, rejects, match report)."""
        with open_source(self.source, self.root) as source:
            specs = self.column_specs(columns or source.columns(self.orchestration.query))
            self.reporter.stage("prepare")
            if self.row_filter is not None and (self.source.kind == "spark" or self.source.hash_in_warehouse):
                # The split needs each row's key before hashing; these paths never bring rows to ttsync.
                raise ConfigError(
                    f"source {self.source.name!r}: campaign splits and holdouts need the rows in ttsync; use a "
                    "source without `hash_in_warehouse` (and not Spark) for this campaign's segments"
                )
            if self.source.kind == "spark":  # identity on the executors (docs/scale.md)
                return specs, self._prepare_on_spark(source, specs, out_dir)
            # hash_in_warehouse: the warehouse runs the identity rules and returns digests only (docs/scale.md).
            pushdown = warehouse_query(
                self.source,
                self.orchestration.query,
                specs,
                self.key_column,
                source.schema(self.orchestration.query) if self.source.hash_in_warehouse else None,
            )
            self.warehouse_sql = pushdown.sql if pushdown else None
            batches = source.stream(
                pushdown.sql if pushdown else self.orchestration.query,
                batch_rows=self.options.read_batch_rows,
            )
            if self.row_filter is not None:
                batches = map(self.row_filter, batches)
            output = prepare_to_parquet(
                batches,
                specs=specs,
                key_column=self.key_column,
                out_dir=out_dir,
                progress=lambda n: self.reporter.advance("prepare", n),
                key_hasher=self.key_hasher(),
                make_preparer=(lambda key: PushdownPreparer(pushdown, key)) if pushdown else None,
            )
        return specs, output

    def _prepare_on_spark(self, source: Source, specs: list[ColumnSpec], out_dir: Path) -> PreparedOutput:
        from ttsync.sources.spark_source import SparkSource
        from ttsync.spark.prepare import prepare_with_spark  # pyspark is an optional extra

        assert isinstance(source, SparkSource)
        output = prepare_with_spark(
            source.dataframe(self.orchestration.query),
            specs=specs,
            key_column=self.key_column,
            out_dir=out_dir,
            key_hasher=self.key_hasher(),
        )
        self.reporter.advance("prepare", output.rows_read)
        return output

    def _plan_on_spark(self, run_dir: Path, audience_id: str | None, id_schemas: list[str]) -> AudiencePlan:
        from ttsync.sources.spark_session import spark_session
        from ttsync.spark.plan import plan_in_spark, prepared_ids

        session = spark_session(self.source.master, self.source.spark_conf)
        remote = self._spark_snapshot(audience_id) if audience_id else None
        snapshot: Path | str | None = self.snapshot_file(audience_id) if audience_id else None
        if remote is not None:
            snapshot = remote.current()
        return plan_in_spark(
            session,
            prepared=prepared_ids(session, run_dir / "prepared" / "spark"),
            digests_path=run_dir / "prepared" / "digests.parquet",
            snapshot=snapshot,
            id_schemas=id_schemas,
            mode=SyncMode(self.settings.mode),
            work_dir=run_dir / "plan",
        )

    def _spark_snapshot(self, audience_id: str) -> SparkSnapshot | None:
        """The audience's snapshot on Spark's file system, when the spark source sets `snapshot_uri`."""
        if self.source.kind != "spark" or not self.source.snapshot_uri:
            return None
        from ttsync.sources.spark_session import spark_session
        from ttsync.spark.snapshot import SparkSnapshot, snapshot_uri

        destination = f"{self.destination.name}__{self.orchestration.name}"
        session = spark_session(self.source.master, self.source.spark_conf)
        return SparkSnapshot(session, snapshot_uri(self.source.snapshot_uri, destination, audience_id))

    @property
    def inflight_dir(self) -> Path:
        """This orchestration's in-flight records and create intent (see audiences/inflight.py)."""
        return inflight_dir(self.state_dir, f"{self.destination.name}__{self.orchestration.name}")

    @property
    def create_intent_path(self) -> Path:
        """Where a create whose answer may be lost is announced (see audiences/audience.py)."""
        return self.inflight_dir / "create-intent.json"

    def _hold_audience(self, audience_id: str) -> None:
        """Take the audience's lease too: one workflow per TikTok audience, whichever orchestration."""
        if self.leases is not None:
            hold(self.leases, audience_resource(self.primary_advertiser, audience_id))

    def _record_inflight(self, ctx: TaskContext, con: Any, plan: AudiencePlan) -> None:
        """Write the plan's in-flight record once, before the upload's first request."""
        if plan.mode in (SyncMode.CREATE, SyncMode.REPLACE) or ctx.checkpoint.get("inflight_record"):
            return
        path = record_inflight(con, plan, self.inflight_dir, ctx.workflow_id)
        ctx.save_checkpoint(ctx.checkpoint | {"inflight_record": str(path)})
        crash_point("upload:inflight")

    def _save_mapping(self, ctx: TaskContext, checkpoint: MappingCheckpoint) -> None:
        ctx.save_checkpoint(ctx.checkpoint | {"mapping": checkpoint.to_json()})
        crash_point("upload:batch")

    def snapshot_file(self, audience_id: str) -> Path:
        """The snapshot of this orchestration's audience on this destination."""
        return snapshot_path(
            self.state_dir, f"{self.destination.name}__{self.orchestration.name}", audience_id
        )

    @property
    def customer_file(self) -> bool:
        """Delivery through the customer-file API rather than the partner segment API."""
        return self.settings.delivery == "customer_file"

    @overload
    def _audience_id(self, ctx: TaskContext) -> str: ...
    @overload
    def _audience_id(self, ctx: TaskContext, *, required: bool) -> str | None: ...
    def _audience_id(self, ctx: TaskContext, *, required: bool = True) -> str | None:
        audience_id = ctx.shared.get("audience_id")
        if audience_id is None and not ctx.dry_run:  # a dry run has only what its verify_audience found
            # In a resumed workflow: the upload's (customer files are created there), else the verified one.
            audience_id = ctx.output_of("upload").get("audience_id") or ctx.output_of("verify_audience").get(
                "audience_id"
            )
        if not audience_id:
            if required:
                raise ResolvableError("the audience was not verified yet: restart the workflow")
            return None
        ctx.shared["audience_id"] = audience_id
        return str(audience_id)

    def _stored_state(self) -> AudienceStateRecord | None:
        """The audience this orchestration last used on the primary advertiser, as stored."""
        states = {
            s.advertiser_id: s
            for s in repos.get_audience_states(self.store, self.destination.name, self.orchestration.name)
        }
        return states.get(self.primary_advertiser)

    def _save_state_if(self, audience_id: str | None) -> None:
        if audience_id:
            self._save_state(audience_id, None, None)

    def _plan(self, ctx: TaskContext) -> AudiencePlan:
        return AudiencePlan.from_state(ctx.checkpoint_of("plan")["plan"])

    def _save_state(self, audience_id: str, size: int | None, valid: bool | None) -> None:
        repos.put_audience_state(
            self.store,
            AudienceStateRecord(
                destination=self.destination.name,
                orchestration=self.orchestration.name,
                advertiser_id=self.primary_advertiser,
                audience_id=audience_id,
                audience_name=self.settings.audience_name,
                last_size=size,
                is_valid=valid,
                checked_at=datetime.now(UTC) if size is not None or valid is not None else None,
            ),
        )

    def remove_guard_warning(self, remove_share: float) -> str | None:
        """A warning when a run removes more than 80% of what the remove guard allows (but not more)."""
        guard = self.settings.remove_guard
        if guard <= 0 or remove_share <= 0.8 * guard or remove_share > guard:
            return None
        return (
            f"this run removes {remove_share:.0%} of the audience, close to the remove guard of {guard:.0%}: "
            "a run that removes more stops before sending"
        )

    def reject_rate_warning(self, report: dict[str, Any]) -> str | None:
        """A warning when a larger share of the rows than `max_reject_rate` has no usable identifier (every value
        rejected or missing), else None. Single bad values of a person with another valid one do not count:
        that person is still sent."""
        people = int(report.get("people") or 0)
        unusable = people - int(report.get("people_matchable") or 0)
        limit = self.settings.max_reject_rate
        if not people or unusable / people <= limit:
            return None
        rejected: dict[str, int] = {}
        for stats in report.get("types") or []:
            for reason, count in (stats.get("rejected") or {}).items():
                rejected[reason] = rejected.get(reason, 0) + int(count)
        reasons = ", ".join(
            f"{reason} {count:,}" for reason, count in sorted(rejected.items(), key=lambda x: -x[1])
        )
        return (
            f"{unusable:,} of {people:,} rows ({unusable / people:.1%}) have no usable identifier, more than "
            f"max_reject_rate {limit:.0%}" + (f" (rejected values: {reasons})" if reasons else "")
        )

    def _warn(
        self,
        ctx: TaskContext,
        message: str,
        *,
        serious: bool = False,
        resolution: str | None = None,
        key: str | None = None,
    ) -> None:
        """A warning: shown now on a terminal, and stored with the task for every other output. A dry run
        (`run --plan`) prints its warnings itself, with the plan."""
        if not ctx.dry_run:
            self.reporter.note(f"warning: {message}")
        ctx.warn(message, serious=serious, resolution=resolution, key=key)

    def _notify(
        self, ctx: TaskContext, severity: str, message: str, *, title: str = "audience recreated"
    ) -> None:
        self.reporter.note(message)
        ctx.warn(message)  # also in the run's output and record (the notification below is its own)
        repos.add_notification(
            self.store,
            workflow_id=ctx.workflow_id,
            severity="warning" if severity == "warning" else "info",
            title=f"{self.orchestration.name}: {title}",
            message=message,
        )


def rejects_by_reason(rejects_path: Path) -> dict[str, int]:
    """Rejected values by reason, most first, from a prepared rejects file."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT reason, count(*) FROM read_parquet({sql_literal(rejects_path)}) GROUP BY reason ORDER BY 2 DESC"
        ).fetchall()
    finally:
        con.close()
    return {str(reason): int(n) for reason, n in rows}
