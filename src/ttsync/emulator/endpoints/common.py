"""What every endpoint handler shares: the request context, the registry, and advertiser access checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ttsync.emulator.errors import ADVERTISER_NOT_FOUND, NO_PERMISSION, ApiError
from ttsync.emulator.model import WRITE_ROLES, Advertiser, State, Token

JsonDict = dict[str, Any]


@dataclass
class Ctx:
    """One API request as the handler sees it."""

    state: State
    path: str  # relative to /open_api/v1.3/, with the trailing slash
    method: str
    params: JsonDict  # JSON body (POST) or query parameters (GET)
    now: float
    token: Token | None = None
    body: bytes = b""
    form: dict[str, Any] = field(default_factory=dict)  # multipart fields (file upload)

    @property
    def permission(self) -> str:
        """The permission name TikTok quotes in 40001 messages, e.g. ``/segment/mapping/:POST``."""
        return f"/{self.path}:{self.method}"


Handler = Callable[[Ctx], JsonDict]
# A JSON body parser of one endpoint's own: the params, or None to let the generic parser decide.
BodyParser = Callable[[bytes], JsonDict | None]


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    auth: bool = True  # needs the Access-Token header
    multipart: bool = False
    parse: BodyParser | None = None  # a faster parser for its bulk layout (see mapping_body.py)


# path -> method -> endpoint
REGISTRY: dict[str, dict[str, Endpoint]] = {}


def endpoint(
    path: str, method: str, *, auth: bool = True, multipart: bool = False, parse: BodyParser | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler for ``METHOD /open_api/v1.3/<path>``."""

    def register(fn: Handler) -> Handler:
        REGISTRY.setdefault(path, {})[method] = Endpoint(fn, auth=auth, multipart=multipart, parse=parse)
        return fn

    return register


def advertiser_access(ctx: Ctx, advertiser_id: str, *, write: bool) -> Advertiser:
    """The advertiser, if this token may use it for this call (ref §5.1 40001/40300, §8.2).

    Unknown advertiser: 40300. Deleted advertiser: 40001 (TikTok reuses 40001 for it). Not reachable by the
    token: 40001 naming the permission. Writes by an Analyst or on an unapproved advertiser: 40001.
    """
    adv = ctx.state.advertisers.get(advertiser_id)
    if adv is None:
        raise ApiError(ADVERTISER_NOT_FOUND, f"Advertiser {advertiser_id} does not exist.")
    token = ctx.token
    assert token is not None  # authenticated endpoints only
    if adv.status == "deleted":
        raise ApiError(
            NO_PERMISSION, f"No permission to operate advertiser {advertiser_id}: it has been deleted."
        )
    if advertiser_id not in token.advertiser_ids:
        raise ApiError(NO_PERMISSION, f"advertiser does not grant you {ctx.permission} permission")
    if write:
        user = ctx.state.users.get(token.user_id)
        role = user.roles.get(advertiser_id) if user else None
        if role not in WRITE_ROLES:
            raise ApiError(
                NO_PERMISSION,
                f"No permission to operate advertiser {advertiser_id} ({ctx.permission}). "
                f"You must be an admin or operator of this advertiser account; your role is {role or 'none'}.",
            )
        if adv.status == "unapproved":
            raise ApiError(
                NO_PERMISSION,
                f"No permission to operate advertiser {advertiser_id}: the account is not approved yet.",
            )
    return adv
