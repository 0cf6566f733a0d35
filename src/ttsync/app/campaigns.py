"""Campaign use-cases (docs/campaigns.md): plan and run a campaign on the audience engine.

A campaign run resolves its segment, removes the exclusions' keys (in SQL, on the audience's source), and for
each sub-audience × destination runs one ordinary audience workflow (`app.runs.start_run`) on a derived
orchestration named `CAMPAIGN.GROUP.DESTINATION` (plus `.DATE` for one-time). The derived name is the unit of
the engine's leases, in-flight records, snapshots and supersession, so a campaign gets them all unchanged: a
recurring campaign mirrors one audience per group and destination; a one-time delivery creates a new one.
Random splits and the holdout come from `sync.groups` (a keyed hash of campaign and key, stable across runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.app.campaign_deliveries import (
    Delivery,
    build_delivery_run,
    campaign_query,
    campaign_report,
    campaign_segments,
    deliveries,
    excluded_keys,
    group_ranges,
)
from ttsync.app.runs import start_run
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import Campaign, Segment
from ttsync.destinations.tiktok.audience.audience import (
    AUDIENCE_CAP,
    audience_count,
    clear_create_intent,
    create_once,
)
from ttsync.destinations.tiktok.client.errors import TikTokError
from ttsync.destinations.tiktok.client.models.dmp import LookalikeSpec
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun, RunOptions
from ttsync.redact import redact_text
from ttsync.sources import open_source
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import TaskRecord, WorkflowRecord
from ttsync.sync.groups import BucketFilter, buckets, in_range
from ttsync.workflows.crashpoints import crash_point
from ttsync.writeback.campaign import CampaignRun, write_campaign_run
from ttsync.writeback.rowkey import workspace_hasher


@dataclass
class CampaignOutcome:
    """What a campaign run did: why nothing was sent, or each delivery's workflow and the holdout size."""

    campaign: str
    status: str  # sent | failed | not_launched | ended | disabled
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    holdout: int = 0
    # The campaign run's own write-back rows (`excluded`, `holdout`) are written under this id.
    run_id: str = field(default_factory=lambda: f"campaign-{uuid.uuid4().hex}")
    writeback_problem: str | None = None  # a write-back failure never fails the campaign

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
            "run_id": self.run_id,
            "writeback_problem": self.writeback_problem,
        }


def group_sizes(
    workspace: Workspace, store: Store, campaign: Campaign, *, holdout_path: Path | None = None
) -> dict[str, int]:
    """Rows per sub-audience and in the holdout (after exclusions); every row in at most one group.

    `holdout_path`: also write the holdout's row keys there (Parquet, `row_key`), in their stored form
    (identifier-looking keys keyed-hashed with the workspace key, as in run folders), for measurement."""
    segments = campaign_segments(store, campaign)
    audience = segments[campaign.audience]
    ranges, holdout = group_ranges(campaign)
    sizes = {g.name: 0 for g in campaign.sub_audiences} | {"holdout": 0}
    by_where = any(g.percent is None for g in campaign.sub_audiences)
    source_model = repos.get_source(store, audience.source)
    with open_source(source_model, workspace.root) as source:
        hasher, held_keys = workspace_hasher(store), []
        for batch in source.stream(campaign_query(campaign, segments, None)):
            bucket = buckets(campaign.name, batch.column(audience.key_column))  # once per row
            held = batch.filter(in_range(bucket, *holdout))
            sizes["holdout"] += int(held.num_rows)
            if holdout_path is not None:
                keys = held.column(audience.key_column)
                original = keys if pa.types.is_integer(keys.type) else None  # checked by value, as in a run
                held_keys.append(hasher.protect(pc.cast(keys, pa.string()), original))
            if not by_where:
                for group, (low, high) in zip(campaign.sub_audiences, ranges, strict=True):
                    sizes[group.name] += int(np.count_nonzero((bucket >= low) & (bucket < high)))
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
    """`ttsync campaigns plan`: group sizes, and per group and destination the audience name, adds, removes,
    what the learning-phase guard defers and rejects by reason (each delivery's own tasks in a dry run:
    nothing is sent or stored), plus warnings (small groups, not launched, TikTok's audience cap)."""
    campaign = repos.get_campaign(store, name)
    day = max(today or datetime.now(UTC).date(), campaign.launch_date)
    sizes = group_sizes(workspace, store, campaign)
    warnings = [
        f"sub-audience {group!r} has {size} people; TikTok needs at least 1,000 to target an audience"
        for group, size in sizes.items()
        if group != "holdout" and size < 1000
    ]
    if (today or datetime.now(UTC).date()) < campaign.launch_date:
        warnings.append(f"not launched yet: nothing is sent before {campaign.launch_date}")
    planned, runs = [], []
    for delivery in deliveries(store, campaign, day):
        run = build_delivery_run(workspace, store, campaign, delivery, day=day)
        preview = run.preview()
        plan = preview["plan"]
        planned.append(
            {
                "group": delivery.group,
                "destination": delivery.destination.destination,
                "orchestration": delivery.orchestration.name,
                "audience_name": delivery.orchestration.settings["audience_name"],
                "adds": int(plan.get("add_ids") or 0),
                "removes": int(plan.get("remove_ids") or 0),
                "deferred_adds": int(plan.get("deferred_adds") or 0),
                "deferred_removes": int(plan.get("deferred_removes") or 0),
                # Forget requests and suppression, as the run applies them (app.privacy): left out, and
                # removed from the audience before the plan.
                "suppressed": int(plan.get("suppressed_ids") or 0),
                "privacy_removes": int(plan.get("privacy_removed_ids") or 0),
                "rejected_by_reason": preview["rejected_by_reason"],
                "warnings": preview["warnings"],
            }
        )
        runs.append(run)
    if campaign.timing == "one_time":
        warnings += _audience_cap_warnings(runs)
    return {
        "campaign": campaign.name,
        "timing": campaign.timing,
        "sizes": sizes,
        "deliveries": planned,
        "warnings": warnings,
    }


AUDIENCE_CAP_WARN_SHARE = 0.9  # warn once a one-time delivery would bring an advertiser this close to the cap


def _audience_cap_warnings(runs: list[OrchestrationRun]) -> list[str]:
    """Each one-time delivery creates a new audience on its destination's first advertiser: warn when that
    brings an advertiser near TikTok's 400 custom audiences (reference §2.5: a limit only Treasure Data
    documents; whether the API enforces it is unconfirmed, so this warns and the create checks it again)."""
    new: dict[str, list[AudienceRun]] = {}
    for run in runs:
        if isinstance(run, AudienceRun):
            new.setdefault(run.primary_advertiser, []).append(run)
    warnings = []
    for advertiser, created in sorted(new.items()):
        try:
            existing = asyncio.run(_count_audiences(created[0]))
        except Exception as exc:  # a plan only looks: TikTok being unreachable is a warning, not a failure
            warnings.append(
                f"could not count advertiser {advertiser}'s custom audiences ({type(exc).__name__}); "
                f"each one-time delivery creates {len(created)} there (TikTok allows {AUDIENCE_CAP})"
            )
            continue
        after = existing + len(created)
        if after >= AUDIENCE_CAP * AUDIENCE_CAP_WARN_SHARE:
            verdict = "exceeds" if after > AUDIENCE_CAP else "nears"
            warnings.append(
                f"advertiser {advertiser} has {existing} custom audiences and this one-time delivery creates "
                f"{len(created)} more ({after}): that {verdict} TikTok's limit of {AUDIENCE_CAP} per advertiser; "
                "delete unused audiences in TikTok Ads Manager, or make the campaign recurring"
            )
    return warnings


async def _count_audiences(run: AudienceRun) -> int:
    async with run.client() as client:
        return await audience_count(client, run.primary_advertiser)


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
    started = datetime.now(UTC)
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
        elif delivery.destination.lookalike is not None:
            outcome.deliveries[-1] |= _lookalike(workspace, store, campaign, delivery, result.workflow, day)
    holdout_path = workspace.state_dir / "campaigns" / f"{campaign.name}.holdout.parquet"
    sizes = group_sizes(workspace, store, campaign, holdout_path=holdout_path)
    outcome.holdout = sizes["holdout"]
    # The people it did not send, for write-back (`excluded`, `holdout`): stored row keys only.
    run = CampaignRun(outcome.run_id, campaign.name, outcome.status, started)
    audience_source = repos.get_source(store, repos.get_segment(store, campaign.audience).source)
    outcome.writeback_problem = write_campaign_run(
        workspace.state_dir,
        workspace.root,
        audience_source,
        run,
        excluded_keys(workspace, store, campaign),
        pq.read_table(holdout_path),
    )
    _record(workspace, campaign, day, outcome, sizes)
    return outcome


LOOKALIKE_SUFFIX = " - lookalike"


def _lookalike(
    workspace: Workspace,
    store: Store,
    campaign: Campaign,
    delivery: Delivery,
    workflow: WorkflowRecord,
    day: date,
) -> dict[str, Any]:
    """Create the delivery's lookalike once its audience holds `min_people` (once: its id is recorded in
    `STATE/campaigns/NAME.lookalikes.json`). TikTok's refusal is reported on the delivery, never a failure of
    the campaign (its audiences were sent)."""
    spec = delivery.destination.lookalike
    assert spec is not None
    path = workspace.state_dir / "campaigns" / f"{campaign.name}.lookalikes.json"
    made: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    name = delivery.orchestration.name
    if name in made:
        return {"lookalike_id": made[name]["lookalike_id"]}
    people = int(next((t.counts for t in workflow.tasks if t.name == "plan"), {}).get("current_people") or 0)
    if people < spec.min_people:
        return {"lookalike": f"waiting: {people:,} of the {spec.min_people:,} people it needs"}
    (state,) = repos.get_audience_states(store, delivery.destination.destination, name)
    run = build_delivery_run(workspace, store, campaign, delivery, day=day)
    assert isinstance(run, AudienceRun)
    lookalike_name = (delivery.orchestration.settings["audience_name"] + LOOKALIKE_SUFFIX)[:128]
    fields = spec.model_dump(exclude={"min_people"}, exclude_none=True)

    # The intent is written before the create: a run killed after TikTok answered but before the id below
    # is stored adopts the lookalike that create made (listed under its name) instead of making another.
    intent = path.with_name(f"{name}.lookalike-intent.json")

    async def create() -> str:
        async with run.client() as client:

            async def make() -> str:
                answer = await client.create_lookalike_audience(
                    run.primary_advertiser,
                    name=lookalike_name,
                    lookalike_spec=LookalikeSpec(source_audience_id=state.audience_id, **fields),
                )
                return answer.custom_audience_id

            made_id, _adopted = await create_once(
                client, run.primary_advertiser, lookalike_name, intent, make
            )
            return made_id

    try:
        lookalike_id = asyncio.run(create())
    except TikTokError as exc:
        return {"lookalike_error": redact_text(str(exc))}
    crash_point("lookalike:created")
    made[name] = {
        "lookalike_id": lookalike_id,
        "source_audience_id": state.audience_id,
        "date": day.isoformat(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")  # replaced whole: a crash never leaves half a file
    tmp.write_text(json.dumps(made, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    clear_create_intent(intent)
    return {"lookalike_id": lookalike_id}


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


def list_campaigns(store: Store) -> list[Campaign]:
    """The workspace's campaigns (`ttsync campaigns list`)."""
    return repos.list_campaigns(store)


def list_segments(store: Store) -> list[Segment]:
    """The workspace's segments (`ttsync segments list`)."""
    return repos.list_segments(store)


__all__ = ["CampaignOutcome", "campaign_report", "group_sizes", "plan_campaign", "run_campaign"]
