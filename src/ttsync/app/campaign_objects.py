"""Segments and campaigns one at a time (the server's endpoints): get, list, save, delete.

Saving goes through `apply_config` with a one-object file, so a segment or campaign stored by the API is
checked exactly as `ttsync apply` checks it (references, sub-audiences, audience names, a one-time launch
date in the past). A segment a campaign uses is not deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from ttsync.app.workspace.apply import apply_config
from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.file import WorkspaceFile
from ttsync.errors import ConfigError
from ttsync.store import repos, schema
from ttsync.store.configrepo import ConfigRepo
from ttsync.store.db import Store
from ttsync.store.records import Change


def _segment(_store: Store, row: sa.RowMapping) -> Segment:
    return Segment.model_validate(row["body"])


def _campaign(_store: Store, row: sa.RowMapping) -> Campaign:
    return Campaign.model_validate(row["body"])


@dataclass(frozen=True)
class _SegmentRepo(ConfigRepo[Segment]):
    """Segments: a campaign refers to them inside its stored body, so `delete` checks the campaigns."""

    def delete(self, store: Store, name: str) -> bool:
        """Delete the segment unless a campaign uses it (`ConfigError` names them)."""
        users = [c.name for c in repos.list_campaigns(store) if name in (c.audience, *c.exclusions)]
        if users:
            raise ConfigError(
                f"segment {name!r} is used by campaign {', '.join(repr(u) for u in users)}: remove or change "
                "those first"
            )
        return super().delete(store, name)


SEGMENTS = _SegmentRepo("segment", schema.segments, _segment)
CAMPAIGNS = ConfigRepo("campaign", schema.campaigns, _campaign)


def save_segment(store: Store, segment: Segment) -> Change:
    """Create or update a segment (its source must exist)."""
    return apply_config(store, WorkspaceFile(segments=[segment])).objects[0].change


def save_campaign(store: Store, campaign: Campaign, *, today: date | None = None) -> Change:
    """Create or update a campaign, checked as `ttsync apply` checks it (`today`: the clock of the one-time
    launch-date check)."""
    return apply_config(store, WorkspaceFile(campaigns=[campaign]), today=today).objects[0].change
