"""Runs and what they leave: plan, run now (202, executed by a worker process), workflows (list, show,
retry, restart, resolve, cancel, live progress as server-sent events), notifications, audiences."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from ttsync.app import background, queries
from ttsync.app.runs import build_run, preview_run
from ttsync.errors import NotFoundError
from ttsync.server import access
from ttsync.server.auth import Principal, authorize, operator, store_of, viewer
from ttsync.server.jsonout import json_response
from ttsync.server.routers.objects import NAME
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.records import AudienceStateRecord, NotificationRecord, WorkflowRecord
from ttsync.store.runqueue import QueuedRun
from ttsync.workflows.resolutions import resolution_for

router = APIRouter(prefix="/api")

WORKFLOW_ID = Path(pattern=r"^[0-9a-f]{4,40}$", description="workflow id or unique prefix")
FINISHED = {"succeeded", "succeeded_with_warnings", "failed", "cancelled", "interrupted", "superseded"}


async def _store(request: Request) -> Store:
    # async: FastAPI runs a sync dependency in a worker thread, a hop that costs more than this does
    return store_of(request)


class Accepted(BaseModel):
    """A queued run: poll the workflow (or stream its events) to follow it."""

    workflow_id: str
    queue_id: str
    state: str
    links: dict[str, str]


def _accepted(item: QueuedRun) -> JSONResponse:
    body = Accepted(
        workflow_id=item.workflow_id,
        queue_id=item.id,
        state=item.state,
        links={
            "workflow": f"/api/workflows/{item.workflow_id}",
            "events": f"/api/workflows/{item.workflow_id}/events",
        },
    )
    return JSONResponse(body.model_dump(), status_code=202)


@router.post("/orchestrations/{name}/plan", tags=["orchestrations"])
def plan(request: Request, name: str = NAME, who: Principal = Depends(operator)) -> dict[str, Any]:
    """What a run would do, sending nothing (`ttsync run --plan`)."""
    store = store_of(request)
    access.check_orchestration(store, who.user, name, use=True)
    return preview_run(build_run(request.app.state.workspace, store, name))


@router.post("/orchestrations/{name}/runs", status_code=202, response_model=Accepted, tags=["orchestrations"])
def run_now(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> JSONResponse:
    """Queue a run now (202 with the workflow id); a worker process executes it."""
    access.check_orchestration(store, who.user, name, use=True)
    return _accepted(background.enqueue(store, name, "run", actor=who.name))


class WorkflowView(BaseModel):
    """A workflow with its tasks, its resolution when it failed, and its runs in the server's queue (a
    queued workflow that no worker started yet reads `pending`)."""

    workflow: WorkflowRecord
    resolution: dict[str, object] | None
    queue: list[QueuedRun]


def _visible_workflow(store: Store, who: Principal, workflow_id: str) -> WorkflowRecord:
    try:
        workflow = queries.show_workflow(store, workflow_id)
    except NotFoundError:
        # Queued and not started yet (or refused before it started): the queue row stands for it.
        rows = runqueue.for_workflow(store, workflow_id)
        if not rows:
            raise
        workflow = _queued_workflow(rows)
    if workflow.orchestration in access.hidden_orchestrations(store, who.user):
        raise NotFoundError("workflow", workflow_id)
    return workflow


def _queued_workflow(rows: list[QueuedRun]) -> WorkflowRecord:
    last = rows[-1]
    refused = last.state == "refused"
    return WorkflowRecord(
        id=last.workflow_id,
        orchestration=last.orchestration,
        kind="queued",
        state="failed" if refused else "cancelled" if last.state == "cancelled" else "pending",
        created_at=rows[0].requested_at,
        error={"message": last.detail, "resolution": "configuration_error"} if refused else None,
    )


def read_workflow_page(
    request: Request, *, orchestration: str | None, state: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """GET /api/workflows once its parameters are checked: authenticate, then one lean query. Blocking (call it
    in a worker thread): `list_workflows` and the fast path of `server.hot` share it."""
    who = authorize(request, "viewer")
    store = store_of(request)
    return queries.workflow_page_rows(
        store,
        orchestration=orchestration,
        state=state,
        exclude_orchestrations=access.hidden_orchestrations(store, who.user),
        limit=limit,
        offset=offset,
    )


def read_workflow(request: Request, workflow_id: str) -> dict[str, Any]:
    """GET /api/workflows/{id} once its parameter is checked (blocking, as `read_workflow_page`): the
    `WorkflowView` as a plain dict."""
    who = authorize(request, "viewer")
    store = store_of(request)
    try:
        view = queries.workflow_view(store, workflow_id)
    except NotFoundError:  # perhaps queued and not started yet: `_visible_workflow` knows
        found = _visible_workflow(store, who, workflow_id)
        queue = runqueue.active_for(store, workflow_id=found.id)
        view = {"workflow": found.model_dump(), "queue": [item.model_dump() for item in queue]}
    workflow = view["workflow"]
    if workflow["orchestration"] in access.hidden_orchestrations(store, who.user):
        raise NotFoundError("workflow", workflow_id)
    error = workflow["error"]
    resolution = resolution_for(error.get("resolution")).to_dict() if error else None
    return {"workflow": workflow, "resolution": resolution, "queue": view["queue"]}


# The two endpoints scripts and dashboards poll most: async, with authentication and the query in a single
# worker thread call, answered as orjson bytes (`response_model` documents and fuzz-checks the shape).
# `server.hot` answers well-formed requests to them before FastAPI's routing; these serve the rest.


@router.get("/workflows", tags=["workflows"], response_model=list[WorkflowRecord])
async def list_workflows(
    request: Request,
    orchestration: str | None = Query(default=None, max_length=80),
    state: str | None = Query(default=None, max_length=32),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> Response:
    """Workflows, newest first, filtered and paged."""
    rows = await run_in_threadpool(
        read_workflow_page, request, orchestration=orchestration, state=state, limit=limit, offset=offset
    )
    return json_response(rows)


@router.get("/workflows/{workflow_id}", tags=["workflows"], response_model=WorkflowView)
async def show_workflow(request: Request, workflow_id: str = WORKFLOW_ID) -> Response:
    """One workflow: tasks with counts (its live progress), error, resolution, queue rows."""
    return json_response(await run_in_threadpool(read_workflow, request, workflow_id))


@router.post("/workflows/{workflow_id}/cancel", tags=["workflows"])
def cancel_workflow(
    workflow_id: str = WORKFLOW_ID, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> list[QueuedRun]:
    """Stop the workflow's run at its next batch boundary; it stays retryable."""
    workflow = _visible_workflow(store, who, workflow_id)
    access.check_orchestration(store, who.user, workflow.orchestration, use=True)
    return background.cancel(store, workflow.id, actor=who.name)


@router.post(
    "/workflows/{workflow_id}/{action}", status_code=202, response_model=Accepted, tags=["workflows"]
)
def continue_workflow(
    action: Literal["retry", "resolve", "restart"],
    workflow_id: str = WORKFLOW_ID,
    store: Store = Depends(_store),
    who: Principal = Depends(operator),
) -> JSONResponse:
    """Retry the failed task, resolve (re-check the fixed configuration, then continue) or restart."""
    workflow = _visible_workflow(store, who, workflow_id)
    access.check_orchestration(store, who.user, workflow.orchestration, use=True)
    item = background.enqueue(store, workflow.orchestration, action, actor=who.name, workflow_id=workflow.id)
    return _accepted(item)


@router.get("/workflows/{workflow_id}/events", tags=["workflows"], response_class=StreamingResponse)
async def workflow_events(
    request: Request, workflow_id: str = WORKFLOW_ID, who: Principal = Depends(viewer)
) -> StreamingResponse:
    """Server-sent events: the workflow (tasks, counts) each time it changes, until it finishes."""
    store = store_of(request)
    first = await run_in_threadpool(_visible_workflow, store, who, workflow_id)

    async def stream() -> AsyncIterator[str]:
        last = ""
        while True:
            workflow = await run_in_threadpool(_visible_workflow, store, who, first.id)
            text = workflow.model_dump_json()
            if text != last:
                last = text
                yield f"event: workflow\ndata: {text}\n\n"
            if workflow.state in FINISHED and not runqueue.active_for(store, workflow_id=first.id):
                yield f"event: end\ndata: {json.dumps({'state': workflow.state})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/notifications", tags=["notifications"])
def list_notifications(
    store: Store = Depends(_store),
    who: Principal = Depends(viewer),
    unread_only: bool = False,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[NotificationRecord]:
    """Alerts raised by workflows, newest first (not those of orchestrations hidden from this user)."""
    items = repos.list_notifications(store, unread_only=unread_only, limit=limit)
    hidden = access.hidden_orchestrations(store, who.user)
    if not hidden:
        return items
    hidden_ids = set(repos.workflow_ids_of(store, hidden))
    return [item for item in items if item.workflow_id not in hidden_ids]


@router.post("/notifications/{notification_id}/acknowledge", tags=["notifications"])
def acknowledge(
    notification_id: int = Path(ge=1, le=2**31 - 1),
    store: Store = Depends(_store),
    who: Principal = Depends(operator),
) -> NotificationRecord:
    """Mark a notification read."""
    item = repos.get_notification(store, notification_id)
    hidden = access.hidden_orchestrations(store, who.user)
    if hidden and item.workflow_id in set(repos.workflow_ids_of(store, hidden)):
        raise NotFoundError("notification", str(notification_id))
    repos.update_notification(store, notification_id, read=True)
    return repos.get_notification(store, notification_id)


@router.get("/audiences", tags=["audiences"])
def audiences(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[AudienceStateRecord]:
    """Each orchestration's TikTok audience with its last known size and state."""
    hidden = set(access.hidden_orchestrations(store, who.user))
    return [item for item in repos.list_audience_states(store) if item.orchestration not in hidden]


@router.get("/audiences/{name}/history", tags=["audiences"])
def audience_history(
    name: str = NAME,
    store: Store = Depends(_store),
    who: Principal = Depends(viewer),
    limit: int = Query(default=200, ge=1, le=1000),
) -> list[queries.AudiencePoint]:
    """Each run of an audience orchestration (`name`: the orchestration, or the TikTok audience id it writes),
    newest first: audience, advertiser, size and match rate read back, ids added and removed."""
    hidden = access.hidden_orchestrations(store, who.user)
    return queries.audience_history(store, name, limit=limit, exclude_orchestrations=hidden)


@router.get("/events/daily", tags=["events"])
def events_daily(
    store: Store = Depends(_store),
    who: Principal = Depends(viewer),
    destination: str | None = Query(default=None, max_length=80),
    days: int = Query(default=30, ge=1, le=366),
) -> list[queries.EventDay]:
    """Offline events per UTC day and destination, newest day first: accepted by TikTok, rejected by reason,
    skipped as duplicates (of the orchestrations this user may see)."""
    return queries.events_per_day(
        store,
        destination=destination,
        days=days,
        exclude_orchestrations=set(access.hidden_orchestrations(store, who.user)),
    )
