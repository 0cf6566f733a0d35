"""Sign in and out, the start page, and the UI's own static files."""

from __future__ import annotations

from importlib import resources

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ttsync.app import accounts, audit
from ttsync.server.auth import SESSION_COOKIE, sign, store_of, unsign
from ttsync.server.problems import Problem
from ttsync.server.web.core import Viewer, page_router, posted, render, signed_in

router = page_router()

_STATIC = {"ui.css": "text/css", "progress.js": "text/javascript", "template.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The UI's own stylesheet and scripts (written here; nothing third-party)."""
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


@router.get("/")
def home(viewer: Viewer = Depends(signed_in)) -> Response:
    """The orchestrations are the start page."""
    return RedirectResponse("/ui/orchestrations", status_code=303)
