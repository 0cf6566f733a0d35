"""Orchestrations (list, page, add/edit with inline validation, Plan, Run now) and workflows (list, page,
retry / resolve / restart / cancel)."""

from __future__ import annotations

from typing import Any, Literal

from croniter import croniter
from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ttsync.app import background, queries
from ttsync.app.runs import build_run, preview_run
from ttsync.config.models import Orchestration
from ttsync.destinations.tiktok.settings import effective_settings
from ttsync.errors import ConfigError, NotFoundError
from ttsync.server import access
from ttsync.server.auth import store_of
from ttsync.server.routers import objects
from ttsync.server.web.core import (
    NAME,
    WORKFLOW_ID,
    Viewer,
    field_errors,
    need,
    page_router,
    posted,
    principal,
    render,
    signed_in,
    yaml_mapping,
    yaml_text,
)
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.workflows.resolutions import resolution_for

FINISHED = {"succeeded", "succeeded_with_warnings", "failed", "cancelled", "interrupted", "superseded"}
STATES = ["pending", "running", *sorted(FINISHED)]

router = page_router()


@router.get("/orchestrations")
def orchestrations(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Orchestrations with their last run and schedule."""
    store = store_of(request)
    rows = queries.orchestration_rows(store, access.hidden_orchestrations(store, viewer.user))
    return render(request, "orchestrations.html", viewer=viewer, rows=rows)


def _orchestration_page(request: Request, viewer: Viewer, name: str, **extra: Any) -> HTMLResponse:
    store = store_of(request)
    access.check_orchestration(store, viewer.user, name, use=False)
    item = repos.get_orchestration(store, name)
    history = queries.page_workflows(store, orchestration=name, limit=20)
    return render(request, "orchestration.html", viewer=viewer, item=item, history=history, **extra)


@router.get("/orchestrations/{name}")
def orchestration(request: Request, name: str = NAME, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """One orchestration: its definition, Plan, Run now and its history."""
    return _orchestration_page(request, viewer, name, plan=None)


@router.post("/orchestrations/{name}/plan")
def plan(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("operator"))) -> HTMLResponse:
    """What a run would do, sending nothing (the API's plan)."""
    store = store_of(request)
    access.check_orchestration(store, viewer.user, name, use=True)
    preview = preview_run(build_run(request.app.state.workspace, store, name))
    return _orchestration_page(request, viewer, name, plan=preview)


@router.post("/orchestrations/{name}/run")
def run_now(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("operator"))) -> Response:
    """Queue a run (a worker process executes it) and open its workflow page."""
    store = store_of(request)
    access.check_orchestration(store, viewer.user, name, use=True)
    item = background.enqueue(store, name, "run", actor=viewer.user.name)
    return RedirectResponse(f"/ui/workflows/{item.workflow_id}", status_code=303)


# --- add / edit --------------------------------------------------------------------------------------------


def _orchestration_form(
    request: Request, viewer: Viewer, form: dict[str, Any], errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    store = store_of(request)
    visible = [d for d in repos.list_destinations(store) if access.visible(viewer.user, d)]
    names = {d.name for d in visible}
    return render(
        request,
        "orchestration_form.html",
        status,
        viewer=viewer,
        form=form,
        errors=errors,
        sources=[s.name for s in repos.list_sources(store)],
        destinations=sorted(names),
        templates=[t.name for t in repos.list_templates(store) if t.destination in names],
    )


@router.get("/orchestrations-new")
def new_orchestration(request: Request, viewer: Viewer = Depends(need("operator"))) -> HTMLResponse:
    """An empty orchestration form (operators and admins)."""
    return _orchestration_form(request, viewer, {"new": True, "enabled": True}, {})


@router.get("/orchestrations/{name}/edit")
def edit_orchestration(
    request: Request, name: str = NAME, viewer: Viewer = Depends(need("operator"))
) -> HTMLResponse:
    """The orchestration's form with its current definition."""
    store = store_of(request)
    access.check_orchestration(store, viewer.user, name, use=True)
    item = repos.get_orchestration(store, name)
    form = item.model_dump(mode="json", exclude={"settings"}) | {
        "settings": yaml_text(item.settings),
        "new": False,
    }
    return _orchestration_form(request, viewer, form, {})


def check_orchestration(store: Store, body: Orchestration) -> dict[str, str]:
    """What `ttsync apply` and a run would refuse, by form field: unknown source, destination or template, a
    template of another destination, merged settings a run cannot use, a schedule cron cannot read."""
    errors: dict[str, str] = {}
    names = {s.name for s in repos.list_sources(store)}
    if body.source not in names:
        errors["source"] = f"no source named {body.source!r}: add it with `ttsync apply` or the API first"
    destination = next((d for d in repos.list_destinations(store) if d.name == body.destination), None)
    if destination is None:
        errors["destination"] = f"no destination named {body.destination!r}: add it on the Destinations page"
    template = None
    if body.template:
        template = next((t for t in repos.list_templates(store) if t.name == body.template), None)
        if template is None:
            errors["template"] = (
                f"no data template named {body.template!r}: add it on the Data templates page"
            )
    if body.schedule and not croniter.is_valid(body.schedule):
        errors["schedule"] = (
            f"{body.schedule!r} is not a cron schedule: five fields minute hour day month weekday, "
            "for example '0 6 * * *' (06:00 every day)"
        )
    if destination is not None and "template" not in errors:
        try:
            effective_settings(destination, template, body)
        except ConfigError as exc:
            field = (
                "template"
                if template is not None and template.destination != destination.name
                else "settings"
            )
            errors[field] = str(exc)
        if destination.kind == "audience" and not body.key_column:
            errors["key_column"] = "an audience orchestration needs key_column: the query's stable row key"
    return errors


@router.post("/orchestrations")
def save_orchestration(
    request: Request,
    viewer: Viewer = Depends(posted("operator")),
    name: str = Form(default="", max_length=80),
    source: str = Form(default="", max_length=80),
    destination: str = Form(default="", max_length=80),
    template: str = Form(default="", max_length=80),
    query: str = Form(default="", max_length=100_000),
    key_column: str = Form(default="", max_length=200),
    settings: str = Form(default="", max_length=20_000),
    schedule: str = Form(default="", max_length=200),
    enabled: bool = Form(default=False),
    description: str = Form(default="", max_length=2000),
    new: bool = Form(default=False),
) -> Response:
    """Save through the API's own handler after the checks a run makes; errors shown by their field."""
    form: dict[str, Any] = {
        "name": name, "source": source, "destination": destination, "template": template, "query": query,
        "key_column": key_column, "settings": settings, "schedule": schedule, "enabled": enabled,
        "description": description, "new": new,
    }  # fmt: skip
    store = store_of(request)
    raw, settings_error = yaml_mapping(settings, "audience_name: Spring buyers")
    errors = {"settings": settings_error} if settings_error else {}
    if not new:
        access.check_orchestration(store, viewer.user, name, use=True)  # 404 / 403 as the API
    fields = {k: v for k, v in form.items() if k != "new"} | {
        "settings": raw or {},
        "template": template or None,
        "key_column": key_column or None,
        "schedule": schedule.strip() or None,
    }
    body = None
    try:
        body = Orchestration.model_validate(fields)
    except ValidationError as exc:
        for field, message in field_errors(exc).items():
            errors.setdefault(field if field in form else "settings", message)
    if body is not None and not errors:
        errors = check_orchestration(store, body)
        if new and any(o.name == body.name for o in repos.list_orchestrations(store)):
            errors["name"] = f"an orchestration named {body.name!r} exists: pick another name, or edit it"
    if errors or body is None:
        return _orchestration_form(request, viewer, form, errors, 422)
    objects.save_orchestration(body, store, principal(viewer))
    return RedirectResponse(f"/ui/orchestrations/{body.name}", status_code=303)


# --- workflows ---------------------------------------------------------------------------------------------


@router.get("/workflows")
def workflows(
    request: Request,
    viewer: Viewer = Depends(signed_in),
    orchestration: str = Query(default="", max_length=80),
    state: str = Query(default="", max_length=32),
    after: str = Query(default="", pattern=r"^([0-9a-f]{4,40})?$"),
) -> HTMLResponse:
    """Workflows, newest first, filtered by orchestration and state; 50 a page, the next page after the last
    workflow of this one."""
    store = store_of(request)
    hidden = access.hidden_orchestrations(store, viewer.user)
    rows = queries.page_workflows(
        store,
        orchestration=orchestration or None,
        state=state or None,
        exclude_orchestrations=hidden,
        limit=50,
        after=after or None,
    )
    names = [o.name for o in repos.list_orchestrations(store) if o.name not in hidden]
    return render(
        request,
        "workflows.html",
        viewer=viewer,
        rows=rows,
        names=names,
        states=STATES,
        orchestration=orchestration,
        state=state,
        after=after,
    )


def _workflow(request: Request, viewer: Viewer, workflow_id: str) -> Any:
    store = store_of(request)
    try:
        workflow = queries.show_workflow(store, workflow_id)
    except NotFoundError:
        if not runqueue.for_workflow(store, workflow_id):
            raise
        workflow = None  # queued, no worker started it yet: the page shows it pending and follows it
    orchestration = (
        workflow.orchestration if workflow else runqueue.for_workflow(store, workflow_id)[-1].orchestration
    )
    if orchestration in access.hidden_orchestrations(store, viewer.user):
        raise NotFoundError("workflow", workflow_id)
    return workflow, orchestration


@router.get("/workflows/{workflow_id}")
def workflow(
    request: Request, workflow_id: str = WORKFLOW_ID, viewer: Viewer = Depends(signed_in)
) -> HTMLResponse:
    """One workflow: the task timeline, live progress while it runs, the resolution of a failure."""
    store = store_of(request)
    record, orchestration = _workflow(request, viewer, workflow_id)
    queue = runqueue.active_for(store, workflow_id=record.id if record else workflow_id)
    resolution = None
    if record is not None and record.error:
        resolution = resolution_for(record.error.get("resolution")).to_dict()
    state = record.state if record else "pending"
    live = bool(queue) or state not in FINISHED
    return render(
        request,
        "workflow.html",
        viewer=viewer,
        workflow=record,
        workflow_id=record.id if record else workflow_id,
        orchestration=orchestration,
        state=state,
        live=live,
        resolution=resolution,
        queue=queue,
    )


@router.post("/workflows/{workflow_id}/{action}")
def continue_workflow(
    request: Request,
    action: Literal["retry", "resolve", "restart", "cancel"],
    workflow_id: str = WORKFLOW_ID,
    viewer: Viewer = Depends(posted("operator")),
) -> Response:
    """Retry, resolve, restart or cancel, as the API does; back to the workflow page."""
    store = store_of(request)
    record, orchestration = _workflow(request, viewer, workflow_id)
    access.check_orchestration(store, viewer.user, orchestration, use=True)
    target = record.id if record else workflow_id
    if action == "cancel":
        background.cancel(store, target, actor=viewer.user.name)
    else:
        background.enqueue(store, orchestration, action, actor=viewer.user.name, workflow_id=target)
    return RedirectResponse(f"/ui/workflows/{target}", status_code=303)
