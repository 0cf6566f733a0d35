"""Destinations: list, page, add/edit (settings validated as the configuration checks them), Test connection."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ttsync.config.models import Destination
from ttsync.destinations.tiktok.oauth import Doctor
from ttsync.destinations.tiktok.settings import validate_settings
from ttsync.errors import ConfigError, NotFoundError
from ttsync.server import access
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
    yaml_mapping,
    yaml_text,
)
from ttsync.store import repos

router = page_router()


@router.get("/destinations")
def destinations(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Destinations this user may see."""
    rows = [d for d in repos.list_destinations(store_of(request)) if access.visible(viewer.user, d)]
    return render(request, "destinations.html", viewer=viewer, rows=rows)


def visible_destination(request: Request, viewer: Viewer, name: str) -> Destination:
    """The destination, or 404 when it does not exist or is hidden from this user."""
    item = repos.get_destination(store_of(request), name)
    if not access.visible(viewer.user, item):
        raise NotFoundError("destination", name)
    return item


def _destination_page(request: Request, viewer: Viewer, name: str, check: Any) -> HTMLResponse:
    item = visible_destination(request, viewer, name)
    return render(request, "destination.html", viewer=viewer, item=item, settings=item.settings, check=check)


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
    item = visible_destination(request, viewer, name)
    form = item.model_dump(mode="json", exclude={"settings"}) | {
        "settings": yaml_text(item.settings),
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
    raw, settings_error = yaml_mapping(settings, "mode: mirror")
    if settings_error:
        errors["settings"] = settings_error
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
    objects.save_destination(body, store, principal(viewer))
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
    visible_destination(request, viewer, name)
    report = Doctor(store_of(request)).destination(name).to_dict()
    return _destination_page(request, viewer, name, report)
