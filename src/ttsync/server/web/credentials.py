"""Credentials: list with token expiry (a warning before it lapses), add, Authorize / Reauthorize through
TikTok's consent page, Test, Revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ttsync.app import audit
from ttsync.config.models import Credential
from ttsync.destinations.tiktok.oauth import AuthorizeFlow, Callback, CredentialFlowError, Doctor, revoke
from ttsync.destinations.tiktok.oauth.checks import EXPIRY_WARNING
from ttsync.destinations.tiktok.settings import checked_credential
from ttsync.errors import ConfigError
from ttsync.redact import redact_error
from ttsync.server.auth import store_of
from ttsync.server.routers import objects
from ttsync.server.web.core import (
    NAME,
    Viewer,
    field_errors,
    need,
    page_router,
    posted,
    principal,
    render,
    signed_in,
)
from ttsync.store import repos

router = page_router()


@dataclass(frozen=True)
class Expiry:
    """How a credential's token stands: `level` ok / warning / problem, and the words the page shows."""

    level: str
    text: str


def token_expiry(credential: Credential, now: datetime) -> Expiry:
    """The token's expiry as `ttsync credentials test` judges it: a token without a refresh token warns
    `EXPIRY_WARNING` (7 days) before it lapses; one with a refresh token is refreshed before runs and warns
    only when the refresh token itself nears its end."""
    if credential.access_token is None:
        return Expiry("problem", "no token: authorize it")
    refreshable = credential.refresh_token is not None
    ends = credential.refresh_token_expires_at if refreshable else credential.token_expires_at
    if ends is None:
        return Expiry("ok", "refreshed before runs" if refreshable else "does not expire")
    left = ends - now
    when = f"{ends:%Y-%m-%d %H:%M} UTC"
    if left.total_seconds() <= 0:
        return Expiry("problem", f"expired {when}: reauthorize")
    if left < EXPIRY_WARNING:
        days = max(1, round(left.total_seconds() / 86_400))
        return Expiry("warning", f"lapses {when} (in {days} day{'s' if days > 1 else ''}): reauthorize")
    return Expiry("ok", f"{'refresh token ' if refreshable else ''}until {when}")


def _credentials_page(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    rows = repos.list_credentials(store_of(request))
    now = datetime.now(UTC)
    expiry = {c.name: token_expiry(c, now) for c in rows}
    context: dict[str, Any] = {"form": {}, "errors": {}, "message": None, "check": None} | extra
    callback = str(request.base_url).rstrip("/") + "/ui/credentials/NAME/callback"
    return render(
        request,
        "credentials.html",
        status,
        viewer=viewer,
        rows=rows,
        expiry=expiry,
        callback=callback,
        **context,
    )


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
        body = checked_credential(Credential.model_validate(data))
    except ValidationError as exc:
        return _credentials_page(request, viewer, 422, form=form, errors=field_errors(exc))
    except ConfigError as exc:  # the advertiser ids, checked as TikTok's
        return _credentials_page(request, viewer, 422, form=form, errors={"advertiser_ids": str(exc)})
    objects.save_credential(body, store_of(request), principal(viewer))
    return _credentials_page(
        request, viewer, message=f"Credential {name!r} saved. Authorize it to get a token from TikTok."
    )


@router.post("/credentials/{name}/authorize")
def authorize(request: Request, name: str = NAME, viewer: Viewer = Depends(posted("admin"))) -> Response:
    """Start OAuth (also to reauthorize): off to TikTok's consent page, which returns to the callback."""
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


@router.post("/credentials/{name}/test")
def check_credential(
    request: Request, name: str = NAME, viewer: Viewer = Depends(posted("admin"))
) -> HTMLResponse:
    """`ttsync credentials test`: the token is present, not expired and accepted; the advertisers it reaches."""
    report = Doctor(store_of(request)).credential(name).to_dict()
    return _credentials_page(request, viewer, check=report | {"credential": name})


@router.post("/credentials/{name}/revoke")
def revoke_credential(
    request: Request, name: str = NAME, viewer: Viewer = Depends(posted("admin"))
) -> HTMLResponse:
    """`ttsync credentials revoke`: revoke the token at TikTok, then forget the stored tokens."""
    store = store_of(request)
    try:
        lost = revoke(store, name)
    except CredentialFlowError as exc:
        return _credentials_page(request, viewer, 409, flow_error=redact_error(exc))
    audit.record(store, viewer.user.name, "credential.revoke", f"credential:{name}", {"advertisers": lost})
    lost_text = f" Advertisers that lost access: {', '.join(lost)}." if lost else ""
    return _credentials_page(
        request,
        viewer,
        message=f"Token of {name!r} revoked and forgotten.{lost_text} Authorize it again to run.",
    )
