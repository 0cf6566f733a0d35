"""Segments, campaigns (+ plan, run now → 202, runs, report), the suppression list and forget requests, as
`ttsync segments|campaigns|suppression|forget` do (docs/campaigns.md).

Rights: everyone reads segments and campaigns (a campaign with a destination hidden from a restricted-PII
user is hidden from them, as its orchestrations would be); operators edit, plan and run them (a campaign with
an admin-only destination only by admins); the suppression list and forget requests are for admins. Values
sent to forget are hashed by `app.privacy.forget` at once and never stored or logged (the request body is not
logged; a validation error never quotes it).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ttsync.app import background
from ttsync.app.audit import record
from ttsync.app.campaign_objects import CAMPAIGNS, SEGMENTS, save_campaign, save_segment
from ttsync.app.campaigns import campaign_report, plan_campaign
from ttsync.app.privacy_list import add_suppression_hashes, listed
from ttsync.app.privacy_list import forget as forget_request
from ttsync.app.privacy_now import forget_now
from ttsync.app.privacy_now import report as forget_report
from ttsync.app.segments import preview_segment
from ttsync.config.campaigns import Campaign, Segment
from ttsync.errors import NotFoundError
from ttsync.server import access
from ttsync.server.auth import Principal, admin, operator, store_of, viewer
from ttsync.server.problems import Problem
from ttsync.server.routers.objects import NAME, Changed, Kind
from ttsync.store.db import Store
from ttsync.store.records import WorkflowRecord
from ttsync.store.runqueue import QueuedRun

router = APIRouter(prefix="/api")

RUN_ID = Path(pattern=r"^[0-9a-f]{32}$", description="a campaign run's id (or its queue id)")


def _store(request: Request) -> Store:
    return store_of(request)


def _today(request: Request) -> date:
    """Today in the server's time zone (`serve --timezone`): the day of a campaign run or check."""
    return datetime.now(UTC).astimezone(ZoneInfo(request.app.state.config.timezone)).date()


def _campaigns_visible(store: Store, who: Principal, items: list[Campaign]) -> list[Campaign]:
    return [item for item in items if access.campaign_visible(store, who.user, item)]


def _use_campaign(store: Store, who: Principal, item: Campaign) -> None:
    access.check_campaign(store, who.user, item, use=True)


def _campaign(store: Store, who: Principal, name: str, *, use: bool) -> Campaign:
    """The campaign, 404 when hidden from `who`, 403 (with `use`) when it sends through an admin-only
    destination and `who` is not an admin."""
    campaign = CAMPAIGNS.get(store, name)
    access.check_campaign(store, who.user, campaign, use=use)
    return campaign


def _run(store: Store, name: str, run_id: str) -> QueuedRun:
    """The queue row of a run of the campaign; 404 problem otherwise."""
    try:
        return background.campaign_run(store, name, run_id)
    except NotFoundError:
        raise Problem(
            404,
            "Not found",
            f"campaign {name!r} has no run {run_id!r}: POST /api/campaigns/{name}/runs starts one",
            resolution="object_not_found",
        ) from None


SEGMENTS_KIND = Kind(
    "segments", "segment", SEGMENTS, Segment, operator,
    ("Segments: named queries that campaigns combine.", "One segment.",
     "Delete a segment no campaign uses."),
)  # fmt: skip
CAMPAIGNS_KIND = Kind(
    "campaigns", "campaign", CAMPAIGNS, Campaign, operator,
    ("Campaigns this user may see.", "One campaign.", "Delete a campaign (its audiences stay in TikTok)."),
    visible=_campaigns_visible, check_use=_use_campaign,
)  # fmt: skip


# --- segments ----------------------------------------------------------------------------------------------

SEGMENTS_KIND.add_routes(router)


@router.post("/segments", tags=["segments"])
def save_segment_route(
    body: Segment, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Create or update a segment (its source must exist)."""
    change = save_segment(store, body)
    record(store, who.name, "segment.save", f"segment:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.get("/segments/{name}/preview", tags=["segments"])
def preview(
    request: Request,
    name: str = NAME,
    region: str | None = Query(default=None, pattern=r"^[A-Za-z]{2}$", description="phones' region"),
    who: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Size, identifier coverage per type, a match-quality estimate and the most frequent rejection reasons:
    counts and reason codes only, never a value (`ttsync segments preview`)."""
    return preview_segment(request.app.state.workspace, store_of(request), name, region=region)


# --- campaigns ---------------------------------------------------------------------------------------------

CAMPAIGNS_KIND.add_routes(router)


@router.post("/campaigns", tags=["campaigns"])
def save_campaign_route(request: Request, body: Campaign, who: Principal = Depends(operator)) -> Changed:
    """Create or update a campaign, checked as `ttsync apply` checks it (segments, templates, audience
    names, a one-time launch date in the past); only through destinations this user may use."""
    store = store_of(request)
    with contextlib.suppress(NotFoundError):  # replacing one: the stored campaign must be usable too
        access.check_campaign(store, who.user, CAMPAIGNS.get(store, body.name), use=True)
    access.check_campaign(store, who.user, body, use=True)
    change = save_campaign(store, body, today=_today(request))
    record(store, who.name, "campaign.save", f"campaign:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.post("/campaigns/{name}/plan", tags=["campaigns"])
def plan(request: Request, name: str = NAME, who: Principal = Depends(operator)) -> dict[str, Any]:
    """Each group's size; per group and destination the audience name, adds, removes, deferred by the
    learning-phase guard and rejects by reason; warnings. Sends nothing (`ttsync campaigns plan`)."""
    store = store_of(request)
    _campaign(store, who, name, use=True)
    return plan_campaign(request.app.state.workspace, store, name, today=_today(request))


class CampaignAccepted(BaseModel):
    """A queued campaign run: follow it at `links.run` (its deliveries' workflows appear as they start)."""

    run_id: str
    queue_id: str
    state: str
    day: date
    links: dict[str, str]


@router.post("/campaigns/{name}/runs", status_code=202, response_model=CampaignAccepted, tags=["campaigns"])
def run_now(request: Request, name: str = NAME, who: Principal = Depends(operator)) -> JSONResponse:
    """Queue a run of the campaign now (202); a worker process sends every sub-audience to its destinations
    (nothing before the launch date or after the end date), each delivery an ordinary workflow."""
    store = store_of(request)
    _campaign(store, who, name, use=True)
    item = background.enqueue_campaign(store, name, _today(request), actor=who.name)
    assert item.run_day is not None
    body = CampaignAccepted(
        run_id=item.workflow_id,
        queue_id=item.id,
        state=item.state,
        day=item.run_day,
        links={"run": f"/api/campaigns/{name}/runs/{item.workflow_id}"},
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


class CampaignRunView(BaseModel):
    """A campaign run: its queue row (state, who asked, when), what it did once done (status, holdout, each
    delivery with its workflow id), and its deliveries' workflows."""

    run: QueuedRun
    outcome: dict[str, Any] | None
    workflows: list[WorkflowRecord]


@router.get("/campaigns/{name}/runs/{run_id}", tags=["campaigns"])
def show_run(
    name: str = NAME, run_id: str = RUN_ID, store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> CampaignRunView:
    """One campaign run and its deliveries' workflows."""
    _campaign(store, who, name, use=False)
    item = _run(store, name, run_id)
    return CampaignRunView(
        run=item,
        outcome=background.campaign_outcome(item),
        workflows=background.campaign_run_workflows(store, item),
    )


@router.post("/campaigns/{name}/runs/{run_id}/cancel", tags=["campaigns"])
def cancel_run(
    name: str = NAME, run_id: str = RUN_ID, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> list[QueuedRun]:
    """Stop the campaign run at its next batch boundary (a queued one never starts; deliveries not started
    are not started); each delivery's workflow stays retryable."""
    _campaign(store, who, name, use=True)
    item = _run(store, name, run_id)
    return background.cancel(store, item.workflow_id, actor=who.name)


@router.get("/campaigns/{name}/report", tags=["campaigns"])
def report(request: Request, name: str = NAME, who: Principal = Depends(viewer)) -> list[dict[str, Any]]:
    """Sizes per group and holdout, and each delivery's adds, removes and deferred, over the recorded runs."""
    store = store_of(request)
    _campaign(store, who, name, use=False)
    return campaign_report(request.app.state.workspace, name, store=store)


# --- suppression and forget (admins) -----------------------------------------------------------------------


class SuppressionUpload(BaseModel):
    """Hashed identifiers (SHA-256 hex digests, already hashed by the sender) of one type."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", description="the list's name")
    type: str = Field(pattern=r"^(?i:EMAIL|PHONE|IDFA|AAID)$")
    hashes: list[str] = Field(max_length=1_000_000)


class PrivacyAdded(BaseModel):
    """What a forget request or suppression upload added: counts and refusal reasons, never a value."""

    request: str
    identifiers: int
    keys: int
    rejected: dict[str, int]
    now: list[dict[str, Any]] | None = None


@router.get("/suppression", tags=["privacy"])
def suppression_list(request: Request, who: Principal = Depends(admin)) -> dict[str, int]:
    """How many identifiers and keys forget requests and suppression lists hold (counts only)."""
    return listed(request.app.state.workspace.state_dir)


@router.post("/suppression", tags=["privacy"])
def suppression_add(
    request: Request, body: SuppressionUpload, who: Principal = Depends(admin)
) -> PrivacyAdded:
    """Add hashed identifiers to a suppression list: no audience of the workspace sends them, and those
    already sent are removed at the next run (`ttsync suppression add`)."""
    added = add_suppression_hashes(
        request.app.state.workspace.state_dir, store_of(request), body.name, body.type, body.hashes,
        actor=who.name,
    )  # fmt: skip
    return PrivacyAdded(**added.to_dict())


class ForgetRequest(BaseModel):
    """People to forget. Hashed on arrival, never stored or logged as sent."""

    model_config = ConfigDict(extra="forbid")

    emails: list[str] = Field(default_factory=list, max_length=100_000)
    phones: list[str] = Field(default_factory=list, max_length=100_000)
    maids: list[str] = Field(default_factory=list, max_length=100_000)
    keys: list[str] = Field(default_factory=list, max_length=100_000, description="warehouse keys")
    region: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$", description="national phones' region")
    now: bool = Field(default=False, description="also remove them from every audience now")


@router.post("/forget", tags=["privacy"])
def forget(request: Request, body: ForgetRequest, who: Principal = Depends(admin)) -> PrivacyAdded:
    """Forget people: removed from every audience of the workspace at its next run whatever the guards (or
    now, with `now`), never sent again; the audit log records the hashes (`ttsync forget`)."""
    workspace, store = request.app.state.workspace, store_of(request)
    added = forget_request(
        workspace.state_dir, store, emails=body.emails, phones=body.phones, maids=body.maids, keys=body.keys,
        region=body.region, actor=who.name,
    )  # fmt: skip
    applied = forget_now(workspace, store, added.request, actor=who.name) if body.now else None
    return PrivacyAdded(**added.to_dict(), now=applied["audiences"] if applied else None)


@router.get("/forget/report", tags=["privacy"])
def forget_report_route(request: Request, who: Principal = Depends(admin)) -> list[dict[str, Any]]:
    """Per forgotten identifier (hash prefix) and audience: whether its snapshot still holds it and whether
    a removal was sent (`ttsync forget --report`)."""
    return forget_report(request.app.state.workspace, store_of(request))
