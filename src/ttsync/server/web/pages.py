"""Page handlers. Each one authenticates like the API (session cookie; the CSRF token of the session on every
post, from the form), checks the role and the destination access rules with the API's own helpers, and calls
the app layer: no business rule lives here, only what to show."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from ttsync.app import accounts, audit, background, queries
from ttsync.app.runs import build_run, preview_run
from ttsync.config.models import Credential, Destination
from ttsync.destinations.tiktok.oauth import AuthorizeFlow, Callback, CredentialFlowError, Doctor
from ttsync.destinations.tiktok.settings import validate_settings
from ttsync.errors import ConfigError, NotFoundError, RunRefusedError
from ttsync.redact import redact_error
from ttsync.server import access
from ttsync.server.auth import SESSION_COOKIE, Principal, sign, store_of, unsign
from ttsync.server.problems import Problem
from ttsync.server.routers import objects
from ttsync.store import repos, runqueue
from ttsync.store.accounts import Role, UserRecord
from ttsync.workflows.resolutions import resolution_for

FINISHED = {"succeeded", "succeeded_with_warnings", "failed", "cancelled", "interrupted", "superseded"}
STATES = ["pending", "running", *sorted(FINISHED)]
NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
WORKFLOW_ID = Path(pattern=r"^[0-9a-f]{4,40}$")

_templates = Environment(
    loader=PackageLoader("ttsync.server.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page and the session's CSRF token (rendered into every form)."""

    user: UserRecord
    csrf_token: str

    @property
    def role(self) -> Role:
        """The user's role."""
        return self.user.role

    def can(self, role: Role) -> bool:
        """Whether the user has `role` or above (the UI hides what it cannot do; the server refuses it)."""
        return accounts.rank(self.user.role) >= accounts.rank(role)


class PageRoute(APIRoute):
    """Turns the API's exceptions into HTML: sign-in redirects, and error pages with the same messages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired:
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/ui/login?next={target}", status_code=303)
            except Problem as exc:
                return _error_page(request, exc.status, exc.title, exc.detail)
            except NotFoundError as exc:
                return _error_page(request, 404, "Not found", redact_error(exc))
            except RunRefusedError as exc:
                return _error_page(request, 409, "Refused", redact_error(exc))
            except ConfigError as exc:
                return _error_page(request, 422, "Configuration error", redact_error(exc))

        return handler


router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template with the header's context (user, unread notifications)."""
    viewer: Viewer | None = context.get("viewer")
    unread = 0
    if viewer is not None:
        unread = len(repos.list_notifications(store_of(request), unread_only=True, limit=1000))
    html = _templates.get_template(name).render(unread=unread, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    viewer = _session(request)
    return render(request, "error.html", status, viewer=viewer, title=title, detail=detail)


def _session(request: Request) -> Viewer | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    session_id = unsign(request.app.state.cookie_key, cookie) if cookie else None
    if session_id is None:
        return None
    try:
        user, session = accounts.session_user(store_of(request), session_id)
    except accounts.AccessError:
        return None
    return Viewer(user, session.csrf_token)


def signed_in(request: Request) -> Viewer:
    """Dependency of every page: the session's user, or a redirect to sign in."""
    viewer = _session(request)
    if viewer is None:
        raise LoginRequired
    return viewer


def need(role: Role) -> Callable[..., Viewer]:
    """A page dependency admitting `role` or above (403 page otherwise)."""

    def check(viewer: Viewer = Depends(signed_in)) -> Viewer:
        if not viewer.can(role):
            raise Problem(403, "Forbidden", f"this needs the {role} role; you are {viewer.role}")
        return viewer

    return check


def posted(role: Role) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A dependency of every form post: `role` or above, and the session's CSRF token in the form."""

    async def check(request: Request, viewer: Viewer = Depends(need(role))) -> Viewer:
        form = await request.form()
        sent = form.get("csrf_token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf_token):
            raise Problem(
                403, "CSRF token missing", "the form was not sent from this site's page: reload it and retry"
            )
        return viewer

    return check


# --- static files, sign in and out ---------------------------------------------------------------------------

_STATIC = {"ui.css": "text/css", "progress.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The UI's own stylesheet and script (written here; nothing third-party)."""
    if name not in _STATIC:
        raise Problem(404, "Not found", f"no static file {name!r}")
    text = resources.files("ttsync.server.web").joinpath("static", name).read_text()
    return Response(text, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})


@router.get("/login")
def login_page(request: Request, next: str = Query(default="/ui/", max_length=300)) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", viewer=None, next=_safe_next(next), error=None)


def _safe_next(target: str) -> str:
    # Only paths of this UI: an absolute or scheme-relative URL would be an open redirect.
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/"


@router.post("/login")
def login(
    request: Request,
    name: str = Form(max_length=80),
    password: str = Form(max_length=1000),
    next: str = Form(default="/ui/", max_length=300),
) -> Response:
    """Check the password (lockout and audit as the API's login), open a session, set the cookie."""
    store = store_of(request)
    try:
        user = accounts.authenticate(store, name, password)
    except accounts.AccessError as exc:
        audit.record(store, name[:80], "session.login_failed", f"user:{name[:80]}", {})
        return render(request, "login.html", 401, viewer=None, next=_safe_next(next), error=str(exc))
    session = accounts.open_session(store, user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign(request.app.state.cookie_key, session.session_id),
        httponly=True,
        samesite="lax",
        secure=bool(request.app.state.config.behind_proxy),
        expires=session.expires_at,
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, viewer: Viewer = Depends(posted("viewer"))) -> Response:
    """End the session."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    session_id = unsign(request.app.state.cookie_key, cookie)
    if session_id:
        accounts.close_session(store_of(request), session_id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- orchestrations ----------------------------------------------------------------------------------------


@router.get("/")
def home(viewer: Viewer = Depends(signed_in)) -> Response:
    """The orchestrations are the start page."""
    return RedirectResponse("/ui/orchestrations", status_code=303)


@router.get("/orchestrations")
def orchestrations(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Orchestrations with their last run and schedule."""
    store = store_of(request)
    hidden = set(access.hidden_orchestrations(store, viewer.user))
    schedules = {item.orchestration: item for item in runqueue.list_schedules(store)}
    rows = []
    for item in repos.list_orchestrations(store):
        if item.name in hidden:
            continue
        last = repos.page_workflows(store, orchestration=item.name, limit=1)
        rows.append({"item": item, "last": last[0] if last else None, "schedule": schedules.get(item.name)})
    return render(request, "orchestrations.html", viewer=viewer, rows=rows)


def _orchestration_page(request: Request, viewer: Viewer, name: str, **extra: Any) -> HTMLResponse:
    store = store_of(request)
    access.check_orchestration(store, viewer.user, name, use=False)
    item = repos.get_orchestration(store, name)
    history = repos.page_workflows(store, orchestration=name, limit=20)
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


# --- workflows ---------------------------------------------------------------------------------------------


@router.get("/workflows")
def workflows(
    request: Request,
    viewer: Viewer = Depends(signed_in),
    orchestration: str = Query(default="", max_length=80),
    state: str = Query(default="", max_length=32),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> HTMLResponse:
    """Workflows, newest first, filtered by orchestration and state."""
    store = store_of(request)
    hidden = access.hidden_orchestrations(store, viewer.user)
    rows = repos.page_workflows(
        store,
        orchestration=orchestration or None,
        state=state or None,
        exclude_orchestrations=hidden,
        limit=50,
        offset=offset,
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
        offset=offset,
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


# --- destinations and credentials --------------------------------------------------------------------------


@router.get("/destinations")
def destinations(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Destinations this user may see."""
    rows = [d for d in repos.list_destinations(store_of(request)) if access.visible(viewer.user, d)]
    return render(request, "destinations.html", viewer=viewer, rows=rows)


def _destination_page(request: Request, viewer: Viewer, name: str, check: Any) -> HTMLResponse:
    item = repos.get_destination(store_of(request), name)
    if not access.visible(viewer.user, item):
        raise NotFoundError("destination", name)
    settings = item.settings
    return render(request, "destination.html", viewer=viewer, item=item, settings=settings, check=check)


def _destination_form(
    request: Request, viewer: Viewer, form: dict[str, Any], errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    names = [c.name for c in repos.list_credentials(store_of(request))]
    return render(
        request, "destination_form.html", status, viewer=viewer, form=form, errors=errors, credentials=names
    )


@router.get("/destinations-new")
def new_destination(request: Request, viewer: Viewer = Depends(need("admin"))) -> HTMLResponse:
    """An empty destination form (admins)."""
    form = {"kind": "audience", "environment": "sandbox", "settings": "advertiser_ids: []\n", "new": True}
    return _destination_form(request, viewer, form, {})


@router.get("/destinations/{name}/edit")
def edit_destination(
    request: Request, name: str = NAME, viewer: Viewer = Depends(need("admin"))
) -> HTMLResponse:
    """The destination's form with its current settings (admins)."""
    item = repos.get_destination(store_of(request), name)
    if not access.visible(viewer.user, item):
        raise NotFoundError("destination", name)
    settings = item.settings
    form = item.model_dump(mode="json", exclude={"settings"}) | {
        "settings": yaml.safe_dump(settings, sort_keys=False) if settings else "",
        "new": False,
    }
    return _destination_form(request, viewer, form, {})


@router.post("/destinations")
def save_destination(
    request: Request,
    viewer: Viewer = Depends(posted("admin")),
    name: str = Form(default="", max_length=80),
    kind: str = Form(default="audience", max_length=20),
    credential: str = Form(default="", max_length=80),
    environment: str = Form(default="sandbox", max_length=20),
    settings: str = Form(default="", max_length=20_000),
    description: str = Form(default="", max_length=2000),
    admin_only: bool = Form(default=False),
    allow_restricted_pii: bool = Form(default=False),
    new: bool = Form(default=False),
) -> Response:
    """Save through the API's own handler; every field error is shown next to its field, nothing is saved."""
    form: dict[str, Any] = {
        "name": name, "kind": kind, "credential": credential, "environment": environment,
        "settings": settings, "description": description, "admin_only": admin_only,
        "allow_restricted_pii": allow_restricted_pii, "new": new,
    }  # fmt: skip
    errors: dict[str, str] = {}
    try:
        raw = yaml.safe_load(settings) if settings.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raw, errors["settings"] = None, f"not valid YAML{where}: write one `setting: value` per line"
    if raw is not None and not isinstance(raw, dict):
        raw, errors["settings"] = None, "settings are `setting: value` lines, for example `mode: mirror`"
    if raw is not None and kind in ("audience", "offline_events"):
        try:
            validate_settings(kind, raw, f"destination {name!r}")  # type: ignore[arg-type]
        except ConfigError as exc:
            errors["settings"] = str(exc)
    store = store_of(request)
    if credential and credential not in {c.name for c in repos.list_credentials(store)}:
        errors["credential"] = f"no credential named {credential!r}: add it on the Credentials page first"
    fields = {k: v for k, v in form.items() if k != "new"} | {"settings": raw if raw is not None else {}}
    existing = None if new else next((d for d in repos.list_destinations(store) if d.name == name), None)
    if existing is not None:
        if not access.visible(viewer.user, existing):
            raise NotFoundError("destination", name)
        fields["sandbox_base_url"] = existing.sandbox_base_url  # not on the form: kept as it is
    body = None
    try:
        body = Destination.model_validate(fields)
    except ValidationError as exc:
        for field, message in field_errors(exc).items():
            # The model re-checks the settings and reports them by setting name: those belong to `settings`.
            errors.setdefault(field if field in form else "settings", message)
    if errors or body is None:
        return _destination_form(request, viewer, form, errors, 422)
    objects.save_destination(body, store, _principal(viewer))
    return RedirectResponse(f"/ui/destinations/{body.name}", status_code=303)


@router.get("/destinations/{name}")
def destination(request: Request, name: str = NAME, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """One destination with its settings and access flags."""
    return _destination_page(request, viewer, name, None)


@router.post("/destinations/{name}/test")
def check_destination(
    request: Request, name: str = NAME, viewer: Viewer = Depends(posted("admin"))
) -> HTMLResponse:
    """Test connection: each check with pass/fail and its fix (the API's and `ttsync doctor`'s checks)."""
    store = store_of(request)
    item = repos.get_destination(store, name)
    if not access.visible(viewer.user, item):
        raise NotFoundError("destination", name)
    return _destination_page(request, viewer, name, Doctor(store).destination(name).to_dict())


def _credentials_page(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    rows = repos.list_credentials(store_of(request))
    context: dict[str, Any] = {"form": {}, "errors": {}, "message": None} | extra
    callback = str(request.base_url).rstrip("/") + "/ui/credentials/NAME/callback"
    return render(request, "credentials.html", status, viewer=viewer, rows=rows, callback=callback, **context)


@router.get("/credentials")
def credentials(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Credentials: app, advertisers, whether a token is set and when it expires (never a secret)."""
    return _credentials_page(request, viewer)


@router.post("/credentials")
def add_credential(
    request: Request,
    viewer: Viewer = Depends(posted("admin")),
    name: str = Form(default="", max_length=80),
    app_id: str = Form(default="", max_length=80),
    app_secret: str = Form(default="", max_length=500),
    advertiser_ids: str = Form(default="", max_length=2000),
    environment: str = Form(default="sandbox", max_length=20),
) -> HTMLResponse:
    """Add (or update) a credential with the API's own save; field errors are shown next to the fields."""
    form = {"name": name, "app_id": app_id, "advertiser_ids": advertiser_ids, "environment": environment}
    callback = str(request.base_url).rstrip("/") + f"/ui/credentials/{name}/callback"
    data: dict[str, Any] = {
        "name": name,
        "app_id": app_id,
        "advertiser_ids": [a.strip() for a in advertiser_ids.replace(",", " ").split() if a.strip()],
        "environment": environment,
        "redirect_uri": callback,
    }
    if app_secret:
        data["app_secret"] = app_secret
    try:
        body = Credential.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        return _credentials_page(request, viewer, 422, form=form, errors=errors)
    objects.save_credential(body, store_of(request), _principal(viewer))
    return _credentials_page(
        request, viewer, message=f"Credential {name!r} saved. Authorize it to get a token from TikTok."
    )


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The first error of each top-level field, worded as the configuration checks word them."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
    return errors


def _principal(viewer: Viewer) -> Principal:
    return Principal(viewer.user, viewer.user.role, "session")


@router.post("/credentials/{name}/authorize")
def authorize(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("admin"))) -> Response:
    """Start OAuth: off to TikTok's consent page (the emulator's in sandbox), which returns to the callback."""
    flow = AuthorizeFlow(store_of(request), request.app.state.workspace.state_dir, name)
    return RedirectResponse(flow.url, status_code=303)


@router.get("/credentials/{name}/callback")
def authorize_callback(
    request: Request,
    name: str = NAME,
    viewer: Viewer = Depends(need("admin")),
    auth_code: str | None = Query(default=None, max_length=2000),
    state: str | None = Query(default=None, max_length=2000),
    error: str | None = Query(default=None, max_length=200),
) -> HTMLResponse:
    """TikTok's redirect: check the signed state, exchange the code, store the token (as the CLI does)."""
    store = store_of(request)
    flow = AuthorizeFlow(store, request.app.state.workspace.state_dir, name)
    try:
        result = flow.complete(Callback(auth_code, state, error))
    except CredentialFlowError as exc:
        return _credentials_page(request, viewer, 400, flow_error=redact_error(exc))
    audit.record(store, viewer.user.name, "credential.authorize", f"credential:{name}", {})
    reached = ", ".join(result.advertiser_ids) or "no advertisers"
    return _credentials_page(
        request, viewer, message=f"Credential {name!r} authorized; the token reaches {reached}."
    )


# --- notifications, users, audit ---------------------------------------------------------------------------


@router.get("/notifications")
def notifications(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Alerts raised by workflows, newest first."""
    rows = repos.list_notifications(store_of(request), unread_only=False, limit=200)
    return render(request, "notifications.html", viewer=viewer, rows=rows)


@router.post("/notifications/{notification_id}/acknowledge")
def acknowledge(
    request: Request,
    notification_id: int = Path(ge=1, le=2**31 - 1),
    viewer: Viewer = Depends(posted("operator")),
) -> Response:
    """Mark a notification read."""
    store = store_of(request)
    repos.get_notification(store, notification_id)
    repos.update_notification(store, notification_id, read=True)
    return RedirectResponse("/ui/notifications", status_code=303)


@router.get("/users")
def users(request: Request, viewer: Viewer = Depends(need("admin"))) -> HTMLResponse:
    """Users with role, restricted-PII flag and whether they are enabled (admins only)."""
    return render(request, "users.html", viewer=viewer, rows=accounts.list_users(store_of(request)))


@router.get("/audit")
def audit_log(
    request: Request,
    viewer: Viewer = Depends(need("admin")),
    actor: str = Query(default="", max_length=120),
    action: str = Query(default="", max_length=64),
) -> HTMLResponse:
    """The audit log, newest first (admins only)."""
    rows = audit.entries(store_of(request), limit=200, offset=0, actor=actor or None, action=action or None)
    return render(request, "audit.html", viewer=viewer, rows=rows, actor=actor, action=action)
