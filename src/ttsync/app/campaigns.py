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
import contextlib
import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.app.runs import start_run
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import BASIS_POINTS, Campaign, CampaignDestination, Segment, SubAudience
from ttsync.config.models import Orchestration
from ttsync.destinations.tiktok.audience.audience import AUDIENCE_CAP, audience_count
from ttsync.destinations.tiktok.client.errors import TikTokError
from ttsync.destinations.tiktok.client.models.dmp import LookalikeSpec
from ttsync.destinations.tiktok.pipelines import pipeline_for
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun, Reporter, RunOptions
from ttsync.destinations.tiktok.settings import effective_settings
from ttsync.errors import ConfigError, NotFoundError
from ttsync.identity.prepare import Preparer
from ttsync.identity.report import MatchReport
from ttsync.redact import redact_text
from ttsync.sources import open_source
from ttsync.sqltext import sql_identifier
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.records import TaskRecord, WorkflowRecord
from ttsync.sync.columns import USER_ID_KINDS, audience_column_specs
from ttsync.sync.groups import BucketFilter, buckets, in_range
from ttsync.writeback.campaign import CampaignRun, write_campaign_run
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
    conditions = [f"{key} NOT IN {_keys_of(segments[name])}" for name, _ in left_out_by(campaign, segments)]
    if group is not None and group.where is not None:
        for earlier in campaign.sub_audiences:
            if earlier.name == group.name:
                break
            conditions.append(f"NOT COALESCE(({earlier.where}), FALSE)")
        conditions.append(f"COALESCE(({group.where}), FALSE)")
    where = ("\nWHERE " + "\n  AND ".join(conditions)) if conditions else ""
    return f"SELECT * FROM ({_strip(audience.query)}) AS ttsync_segment{where}"


def _keys_of(segment: Segment) -> str:
    key = sql_identifier(segment.key_column)
    return f"(SELECT {key} FROM ({_strip(segment.query)}) AS ttsync_exclusion WHERE {key} IS NOT NULL)"


def left_out_by(campaign: Campaign, segments: dict[str, Segment]) -> list[tuple[str, str]]:
    """The segments whose keys a campaign leaves out, with why: its `exclusions`, then the workspace's
    suppression segments on the audience's source (those on other sources still apply by identifier, in
    every run: `app.privacy`)."""
    source = segments[campaign.audience].source
    out = [(name, "exclusion") for name in campaign.exclusions]
    for name, segment in sorted(segments.items()):
        leaves_out = name not in campaign.exclusions and name != campaign.audience
        if segment.suppression and segment.source == source and leaves_out:
            out.append((name, "suppression"))
    return out


def excluded_keys(workspace: Workspace, store: Store, campaign: Campaign) -> pa.Table:
    """The audience's people a campaign leaves out (`row_key` in its stored form, `reason`
    `exclusion:SEGMENT` or `suppression:SEGMENT`, the first that applies): for write-back."""
    segments = _segments(store, campaign)
    audience = segments[campaign.audience]
    key = sql_identifier(audience.key_column)
    reasons = left_out_by(campaign, segments)
    empty = pa.table({"row_key": pa.array([], pa.string()), "reason": pa.array([], pa.string())})
    if not reasons:
        return empty
    cases = " ".join(
        f"WHEN {key} IN {_keys_of(segments[name])} THEN '{why}:{name}'" for name, why in reasons
    )  # segment names are ObjectNames: letters, digits, '-', '_', '.'
    sql = (
        f"SELECT * FROM (SELECT {key} AS ttsync_key, CASE {cases} END AS ttsync_reason "
        f"FROM ({_strip(audience.query)}) AS ttsync_segment) AS ttsync_left WHERE ttsync_reason IS NOT NULL"
    )
    hasher, pieces = workspace_hasher(store), [empty]
    with open_source(repos.get_source(store, audience.source), workspace.root) as source:
        for batch in source.stream(sql):
            keys = batch.column("ttsync_key")
            original = keys if pa.types.is_integer(keys.type) else None  # checked by value, as in a run
            stored = hasher.protect(pc.cast(keys, pa.string()), original)
            pieces.append(
                pa.table({"row_key": stored, "reason": pc.cast(batch.column("ttsync_reason"), pa.string())})
            )
    return pa.concat_tables(pieces)


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
    """The campaign's audience and exclusions, and the workspace's suppression segments."""
    named = {name: repos.get_segment(store, name) for name in (campaign.audience, *campaign.exclusions)}
    return named | {s.name: s for s in repos.list_segments(store) if s.suppression and s.name not in named}


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
    reporter: Reporter | None = None,
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
        reporter=reporter or Reporter(),
        row_filter=delivery.split,
        change_cap=_change_cap(workspace, campaign, day or datetime.now(UTC).date()),
    )


def find_delivery(
    store: Store, name: str, *, workspace: Workspace | None = None, today: date | None = None
) -> tuple[Campaign, Delivery, date] | None:
    """The campaign delivery whose derived orchestration is `name` (None: no campaign derives it).

    Derived names are not stored (a campaign makes them on each run), so a workflow of one is found by
    deriving them again: a recurring campaign's names do not depend on the day; a one-time delivery's day is
    its name's last part, or (for a shortened long name, given `workspace`) a day the campaign report recorded."""
    day = today or datetime.now(UTC).date()
    for campaign in repos.list_campaigns(store):
        if not name.startswith(campaign.name + "."):
            continue
        days = {day}
        if campaign.timing == "one_time":
            with contextlib.suppress(ValueError):
                days.add(date.fromisoformat(name.rsplit(".", 1)[-1]))
            if workspace is not None:
                days |= {date.fromisoformat(r["date"]) for r in campaign_report(workspace, campaign.name)}
        for candidate in sorted(days):
            for delivery in deliveries(store, campaign, candidate):
                if delivery.orchestration.name == name:
                    return campaign, delivery, candidate
    return None


def delivery_run(
    workspace: Workspace, store: Store, name: str, *, reporter: Reporter | None = None
) -> OrchestrationRun | None:
    """The audience run of the campaign delivery named `name` (to retry, resolve or restart one of its
    workflows), or None when no campaign derives that name."""
    found = find_delivery(store, name, workspace=workspace)
    if found is None:
        return None
    campaign, delivery, day = found
    return build_delivery_run(workspace, store, campaign, delivery, day=day, reporter=reporter)


def orchestration_named(store: Store, name: str) -> Orchestration:
    """A stored orchestration, or the derived one of a campaign delivery; `NotFoundError` otherwise."""
    try:
        return repos.get_orchestration(store, name)
    except NotFoundError:
        found = find_delivery(store, name)
        if found is None:
            raise
        return found[1].orchestration


_REJECTION_SAMPLE = 10  # reason codes shown by `segments preview`, the most frequent first


def preview_segment(
    workspace: Workspace, store: Store, name: str, *, region: str | None = None
) -> dict[str, Any]:
    """`ttsync segments preview`: the segment's size, identifier coverage per type, a match-quality estimate
    and its most frequent rejection reasons with counts. Counts and reason codes only, never a value.

    Identifier columns are found by name (email, phone, idfa, aaid; `country` as the phones' region), as an
    orchestration without an attribute mapping finds them; `region`: the phones' default region."""
    segment = repos.get_segment(store, name)
    warnings: list[str] = []
    with open_source(repos.get_source(store, segment.source), workspace.root) as source:
        columns = source.columns(segment.query)
        if segment.key_column not in columns:
            raise ConfigError(
                f"segment {name!r}: its query returns no key column {segment.key_column!r} (it returns "
                f"{', '.join(columns)}); return it or fix `key_column`"
            )
        try:
            specs = audience_column_specs(
                user_id_types=list(USER_ID_KINDS), mapping={}, columns=columns, default_region=region
            )
        except ConfigError:
            specs = []
            warnings.append(
                "the segment returns no identifier column (email, phone, idfa or aaid): a campaign sends "
                "nobody from it to TikTok"
            )
        size, people_by_type = 0, dict.fromkeys((s.kind.upper() for s in specs), 0)
        report = MatchReport()
        if specs:
            with Preparer(specs, key_column=segment.key_column) as preparer:
                for batch in source.stream(segment.query):
                    size += batch.num_rows
                    ids = preparer.process(batch).ids
                    for kind in people_by_type:  # people with at least one usable identifier of the type
                        of_type = ids.filter(pc.starts_with(ids.column("id_schema"), kind + "_"))
                        people_by_type[kind] += pc.count_distinct(of_type.column("row_key")).as_py()
                report = preparer.report()
        else:
            size = sum(batch.num_rows for batch in source.stream(segment.query))
    counted = sorted(
        (
            (count, t.id_schema.split("_")[0], reason)
            for t in report.types
            for reason, count in t.rejected.items()
        ),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    rejections = [{"type": kind, "reason": reason, "count": n} for n, kind, reason in counted]
    coverage = {}
    for t in report.types:
        kind = t.id_schema.split("_")[0]
        people = people_by_type.get(kind, 0)
        coverage[kind] = {
            "columns": t.columns,
            "present": t.present,
            "valid": t.valid,
            "rejected": sum(t.rejected.values()),
            "people": people,  # people with at least one usable identifier of this type
            "share_of_people": round(people / size, 4) if size else 0.0,
        }
    if 0 < size < 1000:
        warnings.append(f"{size} people: TikTok needs at least 1,000 in an audience to target it")
    share = report.people_matchable / size if size else 0.0
    return {
        "segment": name,
        "source": segment.source,
        "size": size,
        "coverage": coverage,
        "match_quality": {
            "people_matchable": report.people_matchable,
            "share_matchable": round(share, 4),
            # An upper bound on TikTok's match rate: it matches a share of the usable identifiers only.
            "estimate": "good" if share >= 0.8 else "fair" if share >= 0.5 else "poor",
        },
        "rejections": rejections[:_REJECTION_SAMPLE],
        "rejection_reasons": len(rejections),
        "warnings": warnings,
    }


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

    async def create() -> str:
        async with run.client() as client:
            answer = await client.create_lookalike_audience(
                run.primary_advertiser,
                name=lookalike_name,
                lookalike_spec=LookalikeSpec(source_audience_id=state.audience_id, **fields),
            )
            return answer.custom_audience_id

    try:
        lookalike_id = asyncio.run(create())
    except TikTokError as exc:
        return {"lookalike_error": redact_text(str(exc))}
    made[name] = {
        "lookalike_id": lookalike_id,
        "source_audience_id": state.audience_id,
        "date": day.isoformat(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(made, indent=2, sort_keys=True), encoding="utf-8")
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


def campaign_report(workspace: Workspace, name: str, *, store: Store | None = None) -> list[dict[str, Any]]:
    """The recorded runs of a campaign, oldest first (given `store`, an unknown campaign is `NotFoundError`,
    not an empty report)."""
    if store is not None:
        repos.get_campaign(store, name)
    path = workspace.state_dir / "campaigns" / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = ["CampaignOutcome", "campaign_report", "plan_campaign", "preview_segment", "run_campaign"]
