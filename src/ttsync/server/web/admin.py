"""Notifications (everyone), users and the audit log (admins): list, add a user, change a role."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ttsync.app import accounts, audit, queries
from ttsync.server.auth import store_of
from ttsync.server.web.core import Viewer, need, page_router, posted, render, signed_in
from ttsync.store import repos
from ttsync.store.accounts import ROLES

router = page_router()

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")  # as the API's users endpoint


@router.get("/notifications")
def notifications(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Alerts raised by workflows, newest first."""
    rows = queries.page_notifications(store_of(request), limit=200)
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


def _users_page(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    context: dict[str, Any] = {"form": {"role": "viewer"}, "errors": {}, "message": None} | extra
    rows = accounts.list_users(store_of(request))
    return render(request, "users.html", status, viewer=viewer, rows=rows, roles=ROLES, **context)


@router.get("/users")
def users(request: Request, viewer: Viewer = Depends(need("admin"))) -> HTMLResponse:
    """Users with role, restricted-PII flag and whether they are enabled (admins only)."""
    return _users_page(request, viewer)


@router.post("/users")
def add_user(
    request: Request,
    viewer: Viewer = Depends(posted("admin")),
    name: str = Form(default="", max_length=200),
    password: str = Form(default="", max_length=1000),
    role: str = Form(default="viewer", max_length=20),
    restricted_pii: bool = Form(default=False),
) -> HTMLResponse:
    """Add a user (admins): the name, password and role checks of `ttsync users add`, shown by their field."""
    form = {"name": name, "role": role, "restricted_pii": restricted_pii}
    errors: dict[str, str] = {}
    store = store_of(request)
    if not USER_NAME.match(name):
        errors["name"] = "a user name starts with a letter or digit and uses letters, digits, . _ @ - (≤ 80)"
    elif any(u.name == name for u in accounts.list_users(store)):
        errors["name"] = f"a user named {name!r} exists: pick another name, or change its role below"
    try:
        accounts.check_password(password)
    except ValueError as exc:
        errors["password"] = str(exc)
    try:
        accounts.check_role(role)
    except ValueError as exc:
        errors["role"] = str(exc)
    if errors:
        return _users_page(request, viewer, 422, form=form, errors=errors)
    try:
        accounts.add_user(store, name, password, role, restricted_pii=restricted_pii, actor=viewer.user.name)
    except ValueError as exc:  # a concurrent add took the name
        return _users_page(request, viewer, 422, form=form, errors={"name": str(exc)})
    return _users_page(request, viewer, message=f"User {name!r} added as {role}.")


@router.post("/users/{name}/role")
def set_role(
    request: Request,
    name: str = Path(pattern=USER_NAME.pattern),
    viewer: Viewer = Depends(posted("admin")),
    role: str = Form(default="", max_length=20),
    restricted_pii: bool = Form(default=False),
) -> HTMLResponse:
    """Change a user's role and restricted-PII mark (admins); refused for the last admin, with the fix."""
    try:
        accounts.set_role(
            store_of(request), name, role, actor=viewer.user.name, restricted_pii=restricted_pii
        )
    except ValueError as exc:
        return _users_page(request, viewer, 422, role_error={"name": name, "message": str(exc)})
    return _users_page(request, viewer, message=f"User {name!r} is now {role}; their sessions were ended.")


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
