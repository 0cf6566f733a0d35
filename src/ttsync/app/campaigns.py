"""Campaign use-cases (docs/campaigns.md): plan and run a campaign on the audience engine.

A campaign run resolves its segment, removes the exclusions' keys (in SQL, on the audience's source), and for
each sub-audience × destination runs one ordinary audience workflow (`app.runs.start_run`) on a derived
orchestration named `CAMPAIGN.GROUP.DESTINATION` (plus `.DATE` for one-time). The derived name is the unit of
the engine's leases, in-flight records, snapshots and supersession, so a campaign gets them all unchanged: a
recurring campaign mirrors one audience per group and destination; a one-time delivery creates a new one.
Random splits and the holdout come from `sync.groups` (a keyed hash of campaign and key, stable across runs).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.app.runs import start_run
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import BASIS_POINTS, Campaign, CampaignDestination, Segment, SubAudience
from ttsync.config.models import Orchestration
from ttsync.destinations.tiktok.pipelines import pipeline_for
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun, Reporter, RunOptions
from ttsync.destinations.tiktok.settings import effective_settings
from ttsync.sources import open_source
from ttsync.sqltext import sql_identifier
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import TaskRecord
from ttsync.sync.groups import BucketFilter
from ttsync.writeback.rowkey import workspace_hasher

_NAME_MAX = 80  # ObjectName's limit


@dataclass(frozen=True)
class Delivery:
    """One sub-audience sent to one destination: the derived orchestration the audience engine runs."""

    group: str
    destination: CampaignDestination
    orchestration: Orchestration
    split: BucketFilter | None  # the random share of this group (None: everyone the query returns)


@dataclass
class CampaignOutcome:
    """What a campaign run did: why nothing was sent, or each delivery's workflow and the holdout size."""

    campaign: str
    status: str  # sent | failed | not_launched | ended | disabled
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    holdout: int = 0

    @property
    def ok(self) -> bool:
        """False only when a delivery failed."""
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`."""
        return {
            "campaign": self.campaign,
            "status": self.status,
            "ok": self.ok,
            "holdout": self.holdout,
            "deliveries": self.deliveries,
        }


def _strip(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _ranges(campaign: Campaign) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Bucket ranges of the sub-audiences and of the holdout (always the top range)."""
    holdout_low = BASIS_POINTS - round(campaign.holdout_percent * 100)
    if any(g.percent is None for g in campaign.sub_audiences):
        return [(0, holdout_low)] * len(campaign.sub_audiences), (holdout_low, BASIS_POINTS)
    ranges, low = [], 0
    for group in campaign.sub_audiences:
        high = min(low + round((group.percent or 0) * 100), holdout_low)
        ranges.append((low, high))
        low = high
    return ranges, (holdout_low, BASIS_POINTS)


def campaign_query(campaign: Campaign, segments: dict[str, Segment], group: SubAudience | None) -> str:
    """SQL of a group (None: the whole audience after exclusions): the segment, minus the exclusions' keys,
    matching the group's `where` and none of the earlier groups' (the first match wins)."""
    audience = segments[campaign.audience]
    key = sql_identifier(audience.key_column)
    conditions = []
    for name in campaign.exclusions:
        other = segments[name]
        other_key = sql_identifier(other.key_column)
        conditions.append(
            f"{key} NOT IN (SELECT {other_key} FROM ({_strip(other.query)}) AS ttsync_exclusion "
            f"WHERE {other_key} IS NOT NULL)"
        )
    if group is not None and group.where is not None:
        for earlier in campaign.sub_audiences:
            if earlier.name == group.name:
                break
            conditions.append(f"NOT COALESCE(({earlier.where}), FALSE)")
        conditions.append(f"COALESCE(({group.where}), FALSE)")
    where = ("\nWHERE " + "\n  AND ".join(conditions)) if conditions else ""
    return f"SELECT * FROM ({_strip(audience.query)}) AS ttsync_segment{where}"


def _derived_name(campaign: Campaign, group: str, destination: str, day: date) -> str:
    parts = [campaign.name, group, destination]
    if campaign.timing == "one_time":
        parts.append(day.isoformat())
    name = ".".join(parts)
    if len(name) > _NAME_MAX:  # keep it unique and within the name rule
        digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
        name = f"{name[: _NAME_MAX - 13]}.{digest}"
    return name


def deliveries(store: Store, campaign: Campaign, day: date) -> list[Delivery]:
    """The sub-audience × destination deliveries of one campaign run on `day`."""
    segments = _segments(store, campaign)
    audience = segments[campaign.audience]
    ranges, _ = _ranges(campaign)
    out = []
    for group, (low, high) in zip(campaign.sub_audiences, ranges, strict=True):
        split = (
            None
            if (low, high) == (0, BASIS_POINTS)
            else BucketFilter(campaign.name, audience.key_column, low, high)
        )
        for dest in campaign.destinations_of(group):
            template = repos.get_template(store, dest.template)
            settings: dict[str, Any] = {"audience_name": campaign.audience_name(template, group.name, day)}
            if dest.user_id_types is not None:
                settings["user_id_types"] = list(dest.user_id_types)
            orchestration = Orchestration(
                name=_derived_name(campaign, group.name, dest.destination, day),
                source=audience.source,
                destination=dest.destination,
                template=dest.template,
                query=campaign_query(campaign, segments, group),
                key_column=audience.key_column,
                settings=settings,
                description=f"campaign {campaign.name!r}, sub-audience {group.name!r}",
            )
            out.append(Delivery(group.name, dest, orchestration, split))
    return out


def _segments(store: Store, campaign: Campaign) -> dict[str, Segment]:
    return {name: repos.get_segment(store, name) for name in (campaign.audience, *campaign.exclusions)}


def _change_cap(workspace: Workspace, campaign: Campaign, day: date) -> Callable[[int], int] | None:
    """The learning-phase guard as a cap on one sync's changes, from the audience's size."""
    guard = campaign.learning_guard
    if guard is None:
        return None
    sent = [
        date.fromisoformat(r["date"]) for r in campaign_report(workspace, campaign.name) if r["deliveries"]
    ]
    if sent and (day - min(sent)).days < guard.stable_days:
        return lambda size: 0  # still in the stable period: every change waits
    share = guard.max_change_per_sync
    return lambda size: max(1, math.floor(size * share))


def build_delivery_run(
    workspace: Workspace,
    store: Store,
    campaign: Campaign,
    delivery: Delivery,
    options: RunOptions | None = None,
    *,
    day: date | None = None,
) -> OrchestrationRun:
    """The audience run of one delivery (as `app.runs.build_run`, on the derived orchestration)."""
    orchestration = delivery.orchestration
    destination = repos.get_destination(store, orchestration.destination)
    template = repos.get_template(store, delivery.destination.template)
    settings = effective_settings(
        destination, template, orchestration, campaign=campaign.name, group=delivery.group
    )
    return pipeline_for(
        settings,
        store=store,
        root=workspace.root,
        state_dir=workspace.state_dir,
        orchestration=orchestration,
        destination=destination,
        template=template,
        credential=repos.get_credential(store, destination.credential),
        source=repos.get_source(store, orchestration.source),
        options=options or RunOptions(),
        reporter=Reporter(),
        row_filter=delivery.split,
        change_cap=_change_cap(workspace, campaign, day or datetime.now(UTC).date()),
    )


def group_sizes(
    workspace: Workspace, store: Store, campaign: Campaign, *, holdout_path: Path | None = None
) -> dict[str, int]:
    """Rows per sub-audience and in the holdout (after exclusions); every row in at most one group.

    `holdout_path`: also write the holdout's row keys there (Parquet, `row_key`), in their stored form
    (identifier-looking keys keyed-hashed with the workspace key, as in run folders), for measurement."""
    segments = _segments(store, campaign)
    audience = segments[campaign.audience]
    ranges, holdout = _ranges(campaign)
    sizes = {g.name: 0 for g in campaign.sub_audiences} | {"holdout": 0}
    by_where = any(g.percent is None for g in campaign.sub_audiences)
    source_model = repos.get_source(store, audience.source)
    with open_source(source_model, workspace.root) as source:
        hold = BucketFilter(campaign.name, audience.key_column, *holdout)
        hasher, held_keys = workspace_hasher(store), []
        for batch in source.stream(campaign_query(campaign, segments, None)):
            held = hold(batch)
            sizes["holdout"] += int(held.num_rows)
            if holdout_path is not None:
                keys = held.column(audience.key_column)
                original = keys if pa.types.is_integer(keys.type) else None  # checked by value, as in a run
                held_keys.append(hasher.protect(pc.cast(keys, pa.string()), original))
            if not by_where:
                for group, (low, high) in zip(campaign.sub_audiences, ranges, strict=True):
                    sizes[group.name] += BucketFilter(campaign.name, audience.key_column, low, high)(
                        batch
                    ).num_rows
        if by_where:
            for group, (low, high) in zip(campaign.sub_audiences, ranges, strict=True):
                split = BucketFilter(campaign.name, audience.key_column, low, high)
                for batch in source.stream(campaign_query(campaign, segments, group)):
                    sizes[group.name] += split(batch).num_rows
    if holdout_path is not None:
        holdout_path.parent.mkdir(parents=True, exist_ok=True)
        keys_table = pa.table({"row_key": pa.chunked_array(held_keys, pa.string())})
        pq.write_table(keys_table, holdout_path.with_suffix(".tmp"))
        holdout_path.with_suffix(".tmp").replace(holdout_path)
    return sizes


def plan_campaign(
    workspace: Workspace, store: Store, name: str, *, today: date | None = None
) -> dict[str, Any]:
    """`ttsync campaigns plan`: group sizes, the audiences each group will be sent to (names), warnings."""
    campaign = repos.get_campaign(store, name)
    day = today or datetime.now(UTC).date()
    sizes = group_sizes(workspace, store, campaign)
    warnings = [
        f"sub-audience {group!r} has {size} people; TikTok needs at least 1,000 to target an audience"
        for group, size in sizes.items()
        if group != "holdout" and size < 1000
    ]
    if day < campaign.launch_date:
        warnings.append(f"not launched yet: nothing is sent before {campaign.launch_date}")
    return {
        "campaign": campaign.name,
        "timing": campaign.timing,
        "sizes": sizes,
        "deliveries": [
            {
                "group": d.group,
                "destination": d.destination.destination,
                "orchestration": d.orchestration.name,
                "audience_name": d.orchestration.settings["audience_name"],
            }
            for d in deliveries(store, campaign, max(day, campaign.launch_date))
        ],
        "warnings": warnings,
    }


def run_campaign(
    workspace: Workspace,
    store: Store,
    name: str,
    *,
    today: date | None = None,
    options: RunOptions | None = None,
) -> CampaignOutcome:
    """`ttsync campaigns run`: one audience workflow per sub-audience × destination, then the holdout is
    recorded (its row keys in `STATE/campaigns/NAME.holdout.parquet`; sizes per run in `NAME.jsonl`). Nothing is sent before the launch date or after
    the end date. `today` is the clock (tests inject one)."""
    campaign = repos.get_campaign(store, name)
    day = today or datetime.now(UTC).date()
    if not campaign.enabled:
        return CampaignOutcome(campaign.name, "disabled")
    if day < campaign.launch_date:
        return CampaignOutcome(campaign.name, "not_launched")
    if campaign.end_date is not None and day > campaign.end_date:
        return CampaignOutcome(campaign.name, "ended")
    outcome = CampaignOutcome(campaign.name, "sent")
    for delivery in deliveries(store, campaign, day):
        result = start_run(build_delivery_run(workspace, store, campaign, delivery, options, day=day))
        outcome.deliveries.append(
            {
                "group": delivery.group,
                "destination": delivery.destination.destination,
                "orchestration": delivery.orchestration.name,
                "audience_name": delivery.orchestration.settings["audience_name"],
                "workflow_id": result.workflow.id,
                "ok": result.ok,
                **_plan_counts(result.workflow.tasks),
            }
        )
        if not result.ok:
            outcome.status = "failed"  # the other groups still go: each delivery is resumable on its own
    holdout_path = workspace.state_dir / "campaigns" / f"{campaign.name}.holdout.parquet"
    sizes = group_sizes(workspace, store, campaign, holdout_path=holdout_path)
    outcome.holdout = sizes["holdout"]
    _record(workspace, campaign, day, outcome, sizes)
    return outcome


def _plan_counts(tasks: list[TaskRecord]) -> dict[str, int]:
    """Adds, removes and what the learning-phase guard deferred, from the plan task's counts."""
    counts = next((t.counts for t in tasks if t.name == "plan"), {})
    keys = ("add_ids", "remove_ids", "deferred_adds", "deferred_removes")
    return {key: int(counts.get(key) or 0) for key in keys}


def _record(
    workspace: Workspace, campaign: Campaign, day: date, outcome: CampaignOutcome, sizes: dict[str, int]
) -> None:
    """Append the run's sizes (counts only, no keys) to the campaign's report file."""
    folder = workspace.state_dir / "campaigns"
    folder.mkdir(parents=True, exist_ok=True)
    line = {
        "date": day.isoformat(),
        "status": outcome.status,
        "sizes": sizes,
        "deliveries": outcome.deliveries,
    }
    with (folder / f"{campaign.name}.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def campaign_report(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    """The recorded runs of a campaign, oldest first."""
    path = workspace.state_dir / "campaigns" / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = ["CampaignOutcome", "campaign_report", "plan_campaign", "run_campaign"]
