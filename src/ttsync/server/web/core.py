"""What every page module shares: the template environment, the signed-in viewer, role and CSRF checks,
the route class turning the API's exceptions into HTML pages, and small form helpers.

Each page group (`session`, `runs`, `objects`, `templates`, `campaigns`, `insights`, `admin`) has its own
router built by `page_router()`; `pages.router` includes them all."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from ttsync.app import accounts, queries
from ttsync.errors import ConfigError, NotFoundError, RunRefusedError
from ttsync.redact import redact_error
from ttsync.server.auth import SESSION_COOKIE, Principal, store_of, unsign
from ttsync.server.problems import Problem
from ttsync.store.accounts import Role, UserRecord

NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
WORKFLOW_ID = Path(pattern=r"^[0-9a-f]{4,40}$")

templates = Environment(
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


def page_router() -> APIRouter:
    """A router of UI pages (under /ui, HTML errors, left out of the OpenAPI document)."""
    return APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template with the header's context (user, unread notifications)."""
    viewer: Viewer | None = context.get("viewer")
    unread = queries.unread_notifications(store_of(request)) if viewer is not None else 0
    html = templates.get_template(name).render(unread=unread, path=request.url.path, **context)
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


def principal(viewer: Viewer) -> Principal:
    """The viewer as the API's handlers take it (so a page saves through the API's own handler)."""
    return Principal(viewer.user, viewer.user.role, "session")


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The first error of each top-level field, worded as the configuration checks word them."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
    return errors


def yaml_mapping(text: str, example: str) -> tuple[dict[str, Any] | None, str | None]:
    """`setting: value` lines as a dict, or None and the fix (the YAML line of a syntax error, or `example`
    when the text is not a mapping). Empty text is an empty mapping."""
    if not text.strip():
        return {}, None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return None, f"not valid YAML{where}: write one `setting: value` per line"
    if not isinstance(raw, dict):
        return None, f"write `setting: value` lines, for example `{example}`"
    return raw, None


def yaml_text(value: dict[str, Any]) -> str:
    """A mapping as the `setting: value` lines a form edits."""
    return yaml.safe_dump(value, sort_keys=False) if value else ""
