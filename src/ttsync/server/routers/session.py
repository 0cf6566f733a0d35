"""Logging in and out, and who am I. A login sets the session cookie and returns the CSRF token that every
cookie-authenticated write must send back in `X-CSRF-Token`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ttsync.app import accounts
from ttsync.app.audit import record
from ttsync.server.auth import SESSION_COOKIE, Principal, principal, sign, store_of, unsign
from ttsync.server.problems import Problem
from ttsync.store.accounts import get_session

router = APIRouter(prefix="/api", tags=["session"])


class Login(BaseModel):
    """User name and password."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1000)


class Me(BaseModel):
    """The caller."""

    name: str
    role: str
    restricted_pii: bool
    via: str
    csrf_token: str | None = None


@router.post("/session")
def login(body: Login, request: Request) -> JSONResponse:
    """Log in: sets the session cookie (HttpOnly, SameSite=Lax, Secure behind TLS) and returns the CSRF token."""
    store = store_of(request)
    try:
        user = accounts.authenticate(store, body.name, body.password)
    except accounts.AccessError as exc:
        record(store, body.name[:80], "session.login_failed", f"user:{body.name[:80]}", {})
        raise Problem(401, "Login refused", str(exc), resolution="not_authenticated") from None
    session = accounts.open_session(store, user)
    me = Me(
        name=user.name,
        role=user.role,
        restricted_pii=user.restricted_pii,
        via="session",
        csrf_token=session.csrf_token,
    )
    response = JSONResponse(me.model_dump())
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


@router.delete("/session")
def logout(request: Request, who: Principal = Depends(principal)) -> JSONResponse:
    """Log out (ends the session of the cookie)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    session_id = unsign(request.app.state.cookie_key, cookie) if cookie else None
    if session_id:
        accounts.close_session(store_of(request), session_id)
    response = JSONResponse({"name": who.name, "logged_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me")
def me(request: Request, who: Principal = Depends(principal)) -> Me:
    """Who is calling, with the session's CSRF token."""
    csrf = None
    cookie = request.cookies.get(SESSION_COOKIE)
    session_id = unsign(request.app.state.cookie_key, cookie) if cookie and who.via == "session" else None
    if session_id:
        session = get_session(store_of(request), accounts.sha256(session_id))
        csrf = session.csrf_token if session else None
    return Me(
        name=who.name, role=who.role, restricted_pii=who.user.restricted_pii, via=who.via, csrf_token=csrf
    )
