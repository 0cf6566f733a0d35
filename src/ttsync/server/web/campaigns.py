"""Campaigns (docs/campaigns.md): list, page (segments, groups, holdout, exclusions, destinations, last
deliveries), Plan (group sizes and each group × destination's adds and removes, sending nothing) and Run
now, as `ttsync campaigns plan|run` do. Run now queues the campaign run (a worker process executes it) and
opens its page: its state and its deliveries' workflows as they start, with Cancel while it is active. A
campaign is hidden from a user who may not see one of its destinations, and only run by a user who may use
them all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ttsync.app import background
from ttsync.app.campaign_deliveries import build_delivery_run, campaign_report, deliveries
from ttsync.app.campaigns import plan_campaign
from ttsync.app.runs import preview_run
from ttsync.config.campaigns import Campaign
from ttsync.errors import NotFoundError
from ttsync.server import access
from ttsync.server.auth import store_of
from ttsync.server.web.core import NAME, Viewer, page_router, posted, render, signed_in
from ttsync.store import repos, runqueue
from ttsync.store.runqueue import ACTIVE_STATES

router = page_router()
RUN_ID = Path(pattern=r"^[0-9a-f]{32}$")


def _campaign(request: Request, viewer: Viewer, name: str, *, use: bool = False) -> Campaign:
    store = store_of(request)
    campaign = repos.get_campaign(store, name)
    if not access.campaign_visible(store, viewer.user, campaign, use=use):
        raise NotFoundError("campaign", name)
    return campaign


@router.get("/campaigns")
def campaigns(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Campaigns with their timing, audience, dates and last recorded run."""
    store = store_of(request)
    workspace = request.app.state.workspace
    rows = []
    for item in repos.list_campaigns(store):
        if access.campaign_visible(store, viewer.user, item):
            runs = campaign_report(workspace, item.name)
            rows.append({"item": item, "last": runs[-1] if runs else None})
    return render(request, "campaigns.html", viewer=viewer, rows=rows)


def _campaign_page(request: Request, viewer: Viewer, campaign: Campaign, **extra: Any) -> HTMLResponse:
    store = store_of(request)
    segments = {
        s.name: s for s in repos.list_segments(store) if s.name in {campaign.audience, *campaign.exclusions}
    }
    runs = campaign_report(request.app.state.workspace, campaign.name)
    context: dict[str, Any] = {"plan": None, "run": None} | extra
    return render(
        request,
        "campaign.html",
        viewer=viewer,
        item=campaign,
        segments=segments,
        last=runs[-1] if runs else None,
        schedule=runqueue.get_schedule(store, campaign.name, "campaign"),
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
def run_now(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("operator"))) -> Response:
    """Queue `ttsync campaigns run` (every group to its destinations; nothing before the launch date) for a
    worker process, and open the run's page."""
    _campaign(request, viewer, name, use=True)
    zone = ZoneInfo(request.app.state.config.timezone)
    day = datetime.now(UTC).astimezone(zone).date()
    item = background.enqueue_campaign(store_of(request), name, day, actor=viewer.user.name)
    return RedirectResponse(f"/ui/campaigns/{name}/runs/{item.workflow_id}", status_code=303)


@router.get("/campaigns/{name}/runs/{run_id}")
def campaign_run(
    request: Request, name: str = NAME, run_id: str = RUN_ID, viewer: Viewer = Depends(signed_in)
) -> HTMLResponse:
    """A campaign run: queued, running (reload to follow) or how it ended, and its deliveries' workflows."""
    item = _campaign(request, viewer, name)
    store = store_of(request)
    queued = background.campaign_run(store, name, run_id)
    run = {
        "item": queued,
        "active": queued.state in ACTIVE_STATES,
        "outcome": background.campaign_outcome(queued),
        "workflows": background.campaign_run_workflows(store, queued),
    }
    return _campaign_page(request, viewer, item, run=run)


@router.post("/campaigns/{name}/runs/{run_id}/cancel")
def cancel(
    request: Request, name: str = NAME, run_id: str = RUN_ID, viewer: Viewer = Depends(posted("operator"))
) -> Response:
    """Stop the campaign run at its next batch boundary (deliveries not started are not started)."""
    _campaign(request, viewer, name, use=True)
    store = store_of(request)
    queued = background.campaign_run(store, name, run_id)
    if queued.state in ACTIVE_STATES:
        background.cancel(store, queued.workflow_id, actor=viewer.user.name)
    return RedirectResponse(f"/ui/campaigns/{name}/runs/{queued.workflow_id}", status_code=303)
