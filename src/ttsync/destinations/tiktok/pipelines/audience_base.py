"""The audience run's settings, stored state and warnings: the base of `AudienceRun` (see audience.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import duckdb

from ttsync.destinations.tiktok.audience.deliver import MappingCheckpoint
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.destinations.tiktok.schemas import ID_SCHEMAS, MD5_SCHEMAS
from ttsync.destinations.tiktok.settings import ResolvedAudienceSettings
from ttsync.errors import ConfigError, ResolvableError
from ttsync.identity import ColumnSpec
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.leases import audience_resource
from ttsync.store.records import AudienceStateRecord
from ttsync.sync.columns import audience_column_specs
from ttsync.sync.inflight import inflight_dir, record_inflight
from ttsync.sync.plan import AudiencePlan, SyncMode
from ttsync.sync.snapshot import snapshot_path
from ttsync.workflows.crashpoints import crash_point
from ttsync.workflows.engine import TaskContext
from ttsync.workflows.ownership import hold

if TYPE_CHECKING:
    from ttsync.spark.snapshot import SparkSnapshot


@dataclass(kw_only=True)
class AudienceRunBase(OrchestrationRun):
    """What an audience workflow knows: its settings, identifier columns, stored state and warnings."""

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
        if self.dry_run_dir is not None:
            # A preview's view of the snapshot once the privacy step took listed identifiers out (app.privacy):
            # the plan then counts exactly what the run would.
            preview = self.dry_run_dir / "snapshots" / f"{audience_id}.parquet"
            if preview.is_file():
                return preview
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
