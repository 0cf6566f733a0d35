"""Campaign deliveries: each sub-audience × destination as a derived orchestration the audience engine runs.

The derived name `CAMPAIGN.GROUP.DESTINATION` (plus `.DATE` for one-time) is the unit of leases, in-flight
records, snapshots and supersession (see `app.campaigns`); this module builds those orchestrations, their SQL
(the segment minus exclusions, the group's predicate) and finds a delivery again from its name for a retry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.app.privacy import with_privacy
from ttsync.app.workspace.layout import Workspace
from ttsync.config.campaigns import BASIS_POINTS, Campaign, CampaignDestination, Segment, SubAudience
from ttsync.config.models import Orchestration
from ttsync.destinations.tiktok.pipelines import pipeline_for
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun, Reporter, RunOptions
from ttsync.destinations.tiktok.settings import effective_settings
from ttsync.errors import NotFoundError
from ttsync.sources import open_source
from ttsync.sqltext import sql_identifier
from ttsync.store import repos
from ttsync.store.db import Store
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


def _strip(query: str) -> str:
    return query.strip().rstrip(";").strip()


def group_ranges(campaign: Campaign) -> tuple[list[tuple[int, int]], tuple[int, int]]:
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
    segments = campaign_segments(store, campaign)
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
    segments = campaign_segments(store, campaign)
    audience = segments[campaign.audience]
    ranges, _ = group_ranges(campaign)
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


def campaign_segments(store: Store, campaign: Campaign) -> dict[str, Segment]:
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
        wrap_tasks=with_privacy,  # `campaigns plan` applies forget requests and suppression as a run does
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


def campaign_report(workspace: Workspace, name: str, *, store: Store | None = None) -> list[dict[str, Any]]:
    """The recorded runs of a campaign, oldest first (given `store`, an unknown campaign is `NotFoundError`,
    not an empty report)."""
    if store is not None:
        repos.get_campaign(store, name)
    path = workspace.state_dir / "campaigns" / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
