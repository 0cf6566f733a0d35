"""Steps the audience tasks call that are not tasks themselves: prepare (local, pushdown or Spark), the plan
on Spark, customer-file delivery, and the read-only TikTok look-ups and preview of `run --plan`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ttsync.destinations.tiktok.audience.audience import (
    AudienceStatus,
    audience_count,
    audience_status,
    clear_create_intent,
)
from ttsync.destinations.tiktok.audience.customer_file import (
    CustomerFileOptions,
    deliver_customer_file,
)
from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.destinations.tiktok.oauth.clients import CHECK_RETRY
from ttsync.destinations.tiktok.pipelines.audience_base import AudienceRunBase
from ttsync.errors import ConfigError
from ttsync.identity import ColumnSpec
from ttsync.identity.pushdown import PushdownPreparer
from ttsync.sources import Source, open_source
from ttsync.sources.pushdown import warehouse_query
from ttsync.store.records import AudienceStateRecord
from ttsync.sync.plan import AudiencePlan, SyncMode, connect
from ttsync.sync.prepare import PreparedOutput, prepare_to_parquet
from ttsync.workflows.engine import TaskContext

# The kinds of warning of a dry run (`TaskContext.warn(key=...)`), in the order `run --plan` shows them.
_PREVIEW_WARNING_ORDER = ("settings", "audience_check", "remove_guard", "reject_rate", "min_size")


class AudienceRunSteps(AudienceRunBase):
    """The audience tasks' helpers (see audience.py)."""

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
