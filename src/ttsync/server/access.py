"""Who may see and use a destination: `admin_only` and `allow_restricted_pii` (of the destination, or of a
data template that overrides them), as the workspace settings describe."""

from __future__ import annotations

from ttsync.app import queries
from ttsync.app.campaign_deliveries import orchestration_named
from ttsync.config.campaigns import Campaign
from ttsync.config.models import DataTemplate, Destination
from ttsync.server.problems import Problem
from ttsync.store import repos
from ttsync.store.accounts import UserRecord
from ttsync.store.db import Store


def _flags(destination: Destination, template: DataTemplate | None) -> tuple[bool, bool]:
    admin_only = destination.admin_only
    allow_pii = destination.allow_restricted_pii
    if template is not None:
        if template.admin_only is not None:
            admin_only = template.admin_only
        if template.allow_restricted_pii is not None:
            allow_pii = template.allow_restricted_pii
    return admin_only, allow_pii


def visible(user: UserRecord, destination: Destination, template: DataTemplate | None = None) -> bool:
    """False for a restricted-PII user and a destination that does not allow restricted PII."""
    _, allow_pii = _flags(destination, template)
    return not (user.restricted_pii and not allow_pii)


def check_use(user: UserRecord, destination: Destination, template: DataTemplate | None = None) -> None:
    """Refuse (404 when hidden, 403 when admin-only) sending through `destination` for `user`."""
    admin_only, _ = _flags(destination, template)
    if not visible(user, destination, template):
        raise Problem(
            404, "Not found", f"no destination named {destination.name!r}", resolution="object_not_found"
        )
    if admin_only and user.role != "admin":
        raise Problem(
            403,
            "Forbidden",
            f"destination {destination.name!r} is admin_only: ask an admin to run it, or to change the setting",
            resolution="forbidden",
        )


def check_orchestration(store: Store, user: UserRecord, name: str, *, use: bool) -> None:
    """404 for an orchestration whose destination is hidden from `user`; with `use`, also 403 admin-only."""
    orchestration = orchestration_named(store, name)  # a campaign delivery's derived one too
    destination = repos.get_destination(store, orchestration.destination)
    template = repos.get_template(store, orchestration.template) if orchestration.template else None
    if not visible(user, destination, template):
        raise Problem(404, "Not found", f"no orchestration named {name!r}", resolution="object_not_found")
    if use:
        check_use(user, destination, template)


def hidden_orchestrations(store: Store, user: UserRecord) -> list[str]:
    """Names of the orchestrations `user` may not see, campaigns' runs included (empty for everyone not
    restricted-PII)."""
    if not user.restricted_pii:
        return []
    destinations = {d.name: d for d in repos.list_destinations(store)}
    templates = {t.name: t for t in repos.list_templates(store)}
    hidden = []
    for item in repos.list_orchestrations(store):
        template = templates.get(item.template) if item.template else None
        if not visible(user, destinations[item.destination], template):
            hidden.append(item.name)
    # A campaign hidden from the user hides its runs too: the queued run (named after the campaign) and its
    # deliveries' workflows (on derived orchestrations, not stored ones).
    for campaign in repos.list_campaigns(store):
        if not campaign_visible(store, user, campaign):
            hidden += [campaign.name, *queries.campaign_delivery_orchestrations(store, campaign.name)]
    return hidden


def _campaign_targets(campaign: Campaign) -> list[tuple[str, str]]:
    """(destination, template) of every delivery of the campaign."""
    pairs = {(d.destination, d.template) for d in campaign.destinations}
    for group in campaign.sub_audiences:
        pairs |= {(d.destination, d.template) for d in group.destinations or []}
    return sorted(pairs)


def campaign_visible(store: Store, user: UserRecord, campaign: Campaign, *, use: bool = False) -> bool:
    """Whether `user` may see (with `use`: send through) every destination of the campaign, as for an
    orchestration; `use` raises the 403 problem for an admin-only destination. A destination or template
    deleted since is left to the plan and the run, which say what is missing."""
    destinations = {d.name: d for d in repos.list_destinations(store)}
    templates = {t.name: t for t in repos.list_templates(store)}
    for destination_name, template_name in _campaign_targets(campaign):
        destination = destinations.get(destination_name)
        if destination is None:
            continue
        template = templates.get(template_name)
        if not visible(user, destination, template):
            return False
        if use:
            check_use(user, destination, template)
    return True


def check_campaign(store: Store, user: UserRecord, campaign: Campaign, *, use: bool) -> None:
    """404 for a campaign with a destination hidden from `user`; with `use`, also 403 for an admin-only one."""
    if not campaign_visible(store, user, campaign, use=use):
        raise Problem(404, "Not found", f"no campaign named {campaign.name!r}", resolution="object_not_found")
