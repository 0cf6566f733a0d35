"""Users, API tokens, the audit log and schedules."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ttsync.app import accounts, audit
from ttsync.server import access
from ttsync.server.auth import Principal, admin, store_of, viewer
from ttsync.server.problems import Problem
from ttsync.store import accounts as account_rows
from ttsync.store import repos, runqueue
from ttsync.store.accounts import AuditRecord, Role
from ttsync.store.db import Store
from ttsync.store.runqueue import ScheduleRecord

router = APIRouter(prefix="/api")
USER = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")


async def _store(request: Request) -> Store:
    # async: FastAPI runs a sync dependency in a worker thread, a hop that costs more than this does
    return store_of(request)


class UserView(BaseModel):
    """A user, without the password hash."""

    name: str
    role: Role
    restricted_pii: bool
    disabled: bool
    locked_until: datetime | None
    created_at: datetime


def _view(user: account_rows.UserRecord) -> UserView:
    return UserView(
        name=user.name,
        role=user.role,
        restricted_pii=user.restricted_pii,
        disabled=user.disabled,
        locked_until=user.locked_until,
        created_at=user.created_at,
    )


class NewUser(BaseModel):
    """A user to add; the password is write-only."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")
    password: str = Field(min_length=accounts.MIN_PASSWORD_LENGTH, max_length=1000)
    role: Role
    restricted_pii: bool = False


class UserChange(BaseModel):
    """Fields of a user to change."""

    model_config = {"extra": "forbid"}

    role: Role | None = None
    restricted_pii: bool | None = None
    disabled: bool | None = None


@router.get("/users", tags=["users"])
def list_users(store: Store = Depends(_store), _: Principal = Depends(admin)) -> list[UserView]:
    """Every user."""
    return [_view(user) for user in accounts.list_users(store)]


@router.post("/users", status_code=201, tags=["users"])
def add_user(body: NewUser, store: Store = Depends(_store), who: Principal = Depends(admin)) -> UserView:
    """Add a user."""
    return _view(
        accounts.add_user(
            store, body.name, body.password, body.role, restricted_pii=body.restricted_pii, actor=who.name
        )
    )


@router.patch("/users/{name}", tags=["users"])
def change_user(
    body: UserChange, name: str = USER, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> UserView:
    """Change a user's role, restricted-PII mark, or disable/enable them."""
    user = account_rows.get_user(store, name)
    if body.role is not None or body.restricted_pii is not None:
        user = accounts.set_role(
            store, name, body.role or user.role, actor=who.name, restricted_pii=body.restricted_pii
        )
    if body.disabled is not None:
        user = accounts.set_disabled(store, name, body.disabled, actor=who.name)
    return _view(user)


class TokenView(BaseModel):
    """An API token without its value."""

    id: str
    user_name: str
    label: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(BaseModel):
    """A token to create, scoped to a role no higher than yours."""

    model_config = {"extra": "forbid"}

    label: str = Field(min_length=1, max_length=200)
    role: Role | None = None


def _token_view(item: account_rows.TokenRecord) -> TokenView:
    return TokenView(**item.model_dump(exclude={"token_hash"}))


@router.get("/tokens", tags=["tokens"])
def list_tokens(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[TokenView]:
    """Your tokens (an admin sees everyone's)."""
    owner = None if who.role == "admin" else who.name
    return [_token_view(item) for item in account_rows.list_tokens(store, owner)]


@router.post("/tokens", status_code=201, tags=["tokens"])
def create_token(
    body: NewToken, store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> JSONResponse:
    """Create a token for yourself; its value is shown in this answer only."""
    if who.via == "token":
        raise Problem(403, "Forbidden", "log in with a password to create API tokens", resolution="forbidden")
    token, item = accounts.create_token(store, who.user, body.label, body.role, actor=who.name)
    return JSONResponse({"token": token, **_token_view(item).model_dump(mode="json")}, status_code=201)


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(
    token_id: str = Path(pattern=r"^[0-9a-f]{16}$"),
    store: Store = Depends(_store),
    who: Principal = Depends(viewer),
) -> TokenView:
    """Revoke a token (yours; an admin may revoke anyone's)."""
    item = account_rows.get_token(store, token_id)
    if item.user_name != who.name and who.role != "admin":
        raise Problem(404, "Not found", f"no token {token_id}", resolution="object_not_found")
    accounts.revoke_token(store, token_id, actor=who.name)
    return _token_view(account_rows.get_token(store, token_id))


@router.get("/audit", tags=["audit"])
def audit_log(
    store: Store = Depends(_store),
    _: Principal = Depends(admin),
    actor: str | None = Query(default=None, max_length=120),
    action: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> list[AuditRecord]:
    """The audit log, newest first."""
    return audit.entries(store, limit=limit, offset=offset, actor=actor, action=action)


@router.get("/schedules", tags=["schedules"])
def schedules(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[ScheduleRecord]:
    """Each scheduled orchestration's and campaign's (`kind`) next and last run and how the last one went."""
    hidden = set(access.hidden_orchestrations(store, who.user))
    hidden_campaigns = {
        c.name for c in repos.list_campaigns(store) if not access.campaign_visible(store, who.user, c)
    }
    return [
        item
        for item in runqueue.list_schedules(store)
        if item.orchestration not in (hidden_campaigns if item.kind == "campaign" else hidden)
    ]
