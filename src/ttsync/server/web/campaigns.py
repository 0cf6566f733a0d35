"""Campaigns (docs/campaigns.md): list, page (segments, groups, holdout, exclusions, destinations, last
deliveries), Plan (group sizes and each group × destination's adds and removes, sending nothing) and Run
now, as `ttsync campaigns plan|run` do. A campaign is hidden from a user who may not see one of its
destinations, and only run by a user who may use them all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from ttsync.app import audit
from ttsync.app.campaign_deliveries import build_delivery_run, campaign_report, deliveries
from ttsync.app.campaigns import plan_campaign, run_campaign
from ttsync.app.runs import preview_run
from ttsync.config.campaigns import Campaign
from ttsync.errors import NotFoundError
from ttsync.server import access
from ttsync.server.auth import store_of
from ttsync.server.web.core import NAME, Viewer, page_router, posted, render, signed_in
from ttsync.store import repos
from ttsync.store.accounts import UserRecord
from ttsync.store.db import Store

router = page_router()


def _targets(campaign: Campaign) -> list[tuple[str, str]]:
    """(destination, template) of every delivery of the campaign."""
    pairs = {(d.destination, d.template) for d in campaign.destinations}
    for group in campaign.sub_audiences:
        pairs |= {(d.destination, d.template) for d in group.destinations or []}
    return sorted(pairs)


def _visible(store: Store, user: UserRecord, campaign: Campaign, *, use: bool = False) -> bool:
    """Whether `user` may see (with `use`: send through) every destination of the campaign; `use` raises
    the API's 403 for an admin-only destination. A destination or template deleted since is left to the
    plan and the run, which say what is missing."""
    destinations = {d.name: d for d in repos.list_destinations(store)}
    templates = {t.name: t for t in repos.list_templates(store)}
    for destination_name, template_name in _targets(campaign):
        destination = destinations.get(destination_name)
        if destination is None:
            continue
        template = templates.get(template_name)
        if not access.visible(user, destination, template):
            return False
        if use:
            access.check_use(user, destination, template)
    return True


def _campaign(request: Request, viewer: Viewer, name: str, *, use: bool = False) -> Campaign:
    store = store_of(request)
    campaign = repos.get_campaign(store, name)
    if not _visible(store, viewer.user, campaign, use=use):
        raise NotFoundError("campaign", name)
    return campaign


@router.get("/campaigns")
def campaigns(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Campaigns with their timing, audience, dates and last recorded run."""
    store = store_of(request)
    workspace = request.app.state.workspace
    rows = []
    for item in repos.list_campaigns(store):
        if _visible(store, viewer.user, item):
            runs = campaign_report(workspace, item.name)
            rows.append({"item": item, "last": runs[-1] if runs else None})
    return render(request, "campaigns.html", viewer=viewer, rows=rows)


def _campaign_page(request: Request, viewer: Viewer, campaign: Campaign, **extra: Any) -> HTMLResponse:
    store = store_of(request)
    segments = {
        s.name: s for s in repos.list_segments(store) if s.name in {campaign.audience, *campaign.exclusions}
    }
    runs = campaign_report(request.app.state.workspace, campaign.name)
    context: dict[str, Any] = {"plan": None, "outcome": None} | extra
    return render(
        request,
        "campaign.html",
        viewer=viewer,
        item=campaign,
        segments=segments,
        last=runs[-1] if runs else None,
        **context,
    )


@router.get("/campaigns/{name}")
def campaign(request: Request, name: str = NAME, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """One campaign: its segments, groups, holdout, exclusions, destinations and last deliveries."""
    return _campaign_page(request, viewer, _campaign(request, viewer, name))


@router.post("/campaigns/{name}/plan")
def plan(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("operator"))) -> HTMLResponse:
    """`ttsync campaigns plan`, and each delivery's adds and removes from its audience run's dry run."""
    item = _campaign(request, viewer, name, use=True)
    store, workspace = store_of(request), request.app.state.workspace
    result = plan_campaign(workspace, store, name)
    day = max(datetime.now(UTC).date(), item.launch_date)
    changes: list[dict[str, Any]] = []
    for delivery in deliveries(store, item, day):
        preview = preview_run(build_delivery_run(workspace, store, item, delivery, day=day))
        counts = preview.get("plan") or {}
        changes.append(
            {
                "group": delivery.group,
                "destination": delivery.destination.destination,
                "audience_name": preview.get("audience_name"),
                "adds": counts.get("add_ids", 0),
                "removes": counts.get("remove_ids", 0),
                "warnings": preview.get("warnings") or [],
            }
        )
    return _campaign_page(request, viewer, item, plan=result | {"changes": changes})


@router.post("/campaigns/{name}/run")
def run_now(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("operator"))) -> HTMLResponse:
    """`ttsync campaigns run`: every group to its destinations now (nothing before the launch date); each
    delivery is an ordinary workflow, linked from the result."""
    _campaign(request, viewer, name, use=True)
    store = store_of(request)
    outcome = run_campaign(request.app.state.workspace, store, name)
    audit.record(store, viewer.user.name, "campaign.run", f"campaign:{name}", {"status": outcome.status})
    return _campaign_page(request, viewer, _campaign(request, viewer, name), outcome=outcome.to_dict())
