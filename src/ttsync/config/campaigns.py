"""Segments and campaigns (docs/campaigns.md): pure models and their checks, no store and no files.

A segment is a named query with a key column. A campaign takes one segment as its audience, removes the keys
of its exclusion segments, splits the rest into sub-audiences (by SQL predicate, first match wins, or by a
stable random percentage) plus an optional holdout, and sends each sub-audience to its destinations.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ttsync.config.common import ObjectName, UserIdType, _Model
from ttsync.config.models import DataTemplate, _check_cron
from ttsync.errors import ConfigError

Timing = Literal["one_time", "recurring"]
# Percentages are kept in basis points (1/100 of a percent) when assigning, so 33.33 splits exactly.
BASIS_POINTS = 10_000


class Segment(_Model):
    """A named query over a source returning a key column and attributes; reusable across campaigns."""

    name: ObjectName
    source: ObjectName
    key_column: str = Field(min_length=1)
    query: str = Field(min_length=1)
    # A suppression segment: its people (by identifier) are never sent by any audience of the workspace, and
    # those already sent are removed at the next run whatever the guards (docs/campaigns.md).
    suppression: bool = False
    description: str = ""


class Lookalike(_Model):
    """A TikTok lookalike of a delivery's audience, created once the audience holds `min_people` (TikTok's
    `dmp/custom_audience/lookalike/create/`, reference §2.x; only the documented fields)."""

    min_people: int = Field(default=1000, ge=100)  # TikTok needs a source of at least 100 people
    audience_size: Literal["NARROW", "BALANCED", "BROAD"] = "BALANCED"
    # TikTok's lookalike location ids (digits, e.g. "6252001"), quoted in YAML so they stay strings.
    location_ids: list[Annotated[str, Field(pattern=r"^[0-9]{1,32}$")]] | None = Field(
        default=None, min_length=1
    )
    include_source: bool = False
    mobile_os: Literal["ALL", "ANDROID", "IOS"] | None = None
    placements: list[Literal["TikTok", "TopBuzz & BuzzVideo", "Pangle"]] | None = Field(
        default=None, min_length=1
    )


class CampaignDestination(_Model):
    """One TikTok audience destination of a sub-audience, with the data template naming its audience."""

    destination: ObjectName
    template: ObjectName
    # Which identifier types this destination receives; default: the destination's `user_id_types`.
    user_id_types: list[UserIdType] | None = None
    lookalike: Lookalike | None = None  # also create a lookalike of this audience once it is large enough


class SubAudience(_Model):
    """A named group: rows matching `where` (SQL over the segment's columns) or a random `percent`."""

    name: ObjectName
    where: str | None = Field(default=None, min_length=1)
    percent: float | None = Field(default=None, gt=0, le=100)
    # Default: the campaign's `destinations`.
    destinations: list[CampaignDestination] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> SubAudience:
        if (self.where is None) == (self.percent is None):
            raise ValueError(
                f"sub-audience {self.name!r}: give exactly one of `where` (an SQL condition over the "
                "segment's columns) or `percent` (a random share, for example 45)"
            )
        return self


class LearningGuard(_Model):
    """Keep a recurring campaign's audiences stable while TikTok's delivery learns (about 50 conversions).

    For `stable_days` after a campaign's first delivery its audiences are not changed; afterwards one sync
    adds plus removes at most `max_change_per_sync` of an audience. Changes beyond are deferred (counted in
    the run's warnings) and sent by later syncs, so the audiences converge."""

    max_change_per_sync: float = Field(gt=0, le=1)
    stable_days: int = Field(default=0, ge=0, le=365)


def _never_fires(cron: str | None) -> str | None:
    """Refuse a cron whose day-of-month never exists in its months (e.g. '0 6 31 2 *')."""
    if cron is None:
        return None
    _, _, days, months, _ = cron.split()
    if not days.isdigit():
        return cron
    month_list = [int(m) for m in months.split(",") if m.isdigit()] if months != "*" else list(range(1, 13))
    if month_list and all(int(days) > calendar.monthrange(2024, m)[1] for m in month_list):
        raise ValueError(
            f"schedule {cron!r} never fires: day {days} does not exist in its months; fix the day"
        )
    return cron


class Campaign(_Model):
    """Audience segment − exclusions, split into sub-audiences (+ holdout), sent to destinations on a timing."""

    name: ObjectName
    audience: ObjectName  # a segment
    exclusions: list[ObjectName] = Field(default_factory=list)
    sub_audiences: list[SubAudience] = Field(min_length=1)
    holdout_percent: float = Field(default=0, ge=0, lt=100)
    destinations: list[CampaignDestination] = Field(default_factory=list)
    timing: Timing = "recurring"
    learning_guard: LearningGuard | None = None
    launch_date: date
    end_date: date | None = None
    schedule: Annotated[str | None, AfterValidator(_check_cron), AfterValidator(_never_fires)] = None
    enabled: bool = True
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        where = f"campaign {self.name!r}"
        if self.audience in self.exclusions:
            raise ValueError(
                f"{where} excludes its own audience {self.audience!r}: remove it from `exclusions`"
            )
        names = [g.name for g in self.sub_audiences]
        if len(set(names)) != len(names) or "holdout" in names:
            raise ValueError(f"{where}: sub-audience names must be unique and not 'holdout' (reserved)")
        split = [g.percent for g in self.sub_audiences if g.percent is not None]
        if split and len(split) != len(self.sub_audiences):
            raise ValueError(
                f"{where}: sub-audiences use either `where` or `percent`, not both; split by percent, or give "
                "every group a `where` (the first match wins)"
            )
        if split and round(sum(split) + self.holdout_percent, 6) != 100:
            raise ValueError(
                f"{where}: sub-audience percentages ({' + '.join(f'{p:g}' for p in split)}) plus "
                f"holdout_percent ({self.holdout_percent:g}) must sum to 100"
            )
        for group in self.sub_audiences:
            if not (group.destinations if group.destinations is not None else self.destinations):
                raise ValueError(
                    f"{where}: sub-audience {group.name!r} has no destination; set `destinations` on the "
                    "campaign or on the sub-audience"
                )
        if self.learning_guard is not None and self.timing == "one_time":
            raise ValueError(
                f"{where}: learning_guard applies to recurring campaigns (a one-time delivery is a new "
                "audience); remove it or set `timing: recurring`"
            )
        if self.end_date is not None and self.end_date < self.launch_date:
            raise ValueError(f"{where}: end_date {self.end_date} is before launch_date {self.launch_date}")
        return self

    def destinations_of(self, group: SubAudience) -> list[CampaignDestination]:
        """The destinations of one sub-audience (its own, else the campaign's)."""
        return group.destinations if group.destinations is not None else self.destinations

    def audience_name(self, template: DataTemplate, group: str, day: date) -> str:
        """The TikTok audience name of a group: the template's, with the delivery date for one-time."""
        stamp = day.isoformat()
        name = template.render_audience_name(self.name, group, stamp)
        if name is None:
            raise ConfigError(
                f"campaign {self.name!r}: data template {template.name!r} has no audience_name_template; "
                "set one such as '{campaign} - {group}' and make the template available_to_campaigns"
            )
        if self.timing == "one_time" and "{date}" not in (template.audience_name_template or ""):
            name = f"{name} - {stamp}"  # each one-time delivery is a new audience: its date tells them apart
        return name


def check_campaign(
    campaign: Campaign,
    segments: Mapping[str, Segment],
    templates: Mapping[str, DataTemplate],
    *,
    audience_name_problem: Callable[[str], str | None],
    today: date | None = None,
) -> None:
    """Check a campaign against the workspace's segments and templates; `ConfigError` says how to fix it.

    `audience_name_problem`: the destination's rule for an audience name (why it cannot be used, or None).
    `today`: also refuse a one-time campaign whose launch date is past (given when it is first applied)."""
    where = f"campaign {campaign.name!r}"
    known = ", ".join(sorted(segments)) or "none yet"
    for name in (campaign.audience, *campaign.exclusions):
        if name not in segments:
            raise ConfigError(f"{where} uses segment {name!r}, which does not exist; known segments: {known}")
    source = segments[campaign.audience].source
    for name in campaign.exclusions:
        if segments[name].source != source:
            raise ConfigError(
                f"{where}: exclusion {name!r} reads source {segments[name].source!r}, but the audience reads "
                f"{source!r}; exclusions must come from the audience's source"
            )
    for group in campaign.sub_audiences:
        for dest in campaign.destinations_of(group):
            template = templates.get(dest.template)
            if template is None:
                raise ConfigError(
                    f"{where}: data template {dest.template!r} does not exist; add it or fix the name"
                )
            if template.destination != dest.destination:
                raise ConfigError(
                    f"{where}: data template {template.name!r} belongs to destination {template.destination!r}, "
                    f"not {dest.destination!r}"
                )
            if not template.available_to_campaigns:
                raise ConfigError(
                    f"{where}: data template {template.name!r} is not available to campaigns; set "
                    "`available_to_campaigns: true` on it"
                )
            problem = audience_name_problem(
                campaign.audience_name(template, group.name, campaign.launch_date)
            )
            if problem:
                raise ConfigError(f"{where}: {problem}")
    if today is not None and campaign.timing == "one_time" and campaign.launch_date < today:
        raise ConfigError(
            f"{where}: launch_date {campaign.launch_date} is in the past for a one-time campaign; "
            f"set it to {today} or later"
        )
