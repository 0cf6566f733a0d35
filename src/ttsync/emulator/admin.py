"""The admin API under /_emulator/ (never under /open_api/): seed, inspect, configure, provoke conditions.

The admin API can reset the emulator and read every token, so it is guarded against other local processes and
web pages: each request needs the per-process admin token (``Authorization: Bearer TOKEN``, printed at start
and written to the ``--seed-out`` file), a loopback ``Host`` header (a web page reaching the port through DNS
rebinding sends its own host name), no foreign ``Origin``, and writes need a JSON content type (an HTML form
can only post form or text bodies without a CORS preflight).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ttsync.emulator.endpoints.oauth import issue_token
from ttsync.emulator.faults import FaultConfig
from ttsync.emulator.model import (
    CUSTOMER_FILE,
    PARTNER,
    ROLES,
    AuthCode,
    EventSet,
    State,
    Token,
    User,
)
from ttsync.emulator.ops import create_audience, delete_audience, live_audience_count
from ttsync.emulator.ratelimit import GROUPS
from ttsync.emulator.variants import VARIANTS, parse_variants
from ttsync.emulator.views import audience_details

if TYPE_CHECKING:
    from ttsync.emulator.app import Emulator

ADMIN_PREFIX = "/_emulator"
ADMIN_TOKEN_HEADER = "authorization"  # noqa: S105 (a header name, not a secret)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AdminError(Exception):
    """A bad admin request (HTTP 400 with a JSON error)."""


def _host_name(value: str) -> str:
    """The host part of a ``Host`` or ``Origin`` value (``[::1]:8765`` -> ``::1``), lowercase."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, server_address: str | None) -> bool:
    """True for a loopback host name or address, or the literal address the request arrived on.

    A DNS-rebinding page reaches the port under its own host name, never under an address literal, so the
    server's own address (when it listens on another interface) is safe to accept.
    """
    name = _host_name(host)
    if name in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or (server_address is not None and name == server_address.lower())


def check_admin_request(request: Request, admin_token: str) -> Response | None:
    """None when the request may use the admin API, else the refusal to send."""
    server = request.scope.get("server")
    if not host_allowed(request.headers.get("host", ""), server[0] if server else None):
        return JSONResponse({"error": "the admin API answers only to a loopback Host header"}, 403)
    origin = request.headers.get("origin")
    if origin is not None and not host_allowed(origin, None):
        return JSONResponse({"error": "cross-site requests to the admin API are refused"}, 403)
    given = request.headers.get(ADMIN_TOKEN_HEADER, "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), admin_token.encode()):
        return JSONResponse(
            {
                "error": "admin token missing or wrong: send `Authorization: Bearer TOKEN` with the "
                "admin_token printed at start and written to the --seed-out file"
            },
            401,
        )
    if request.method in _WRITE_METHODS:
        content_type = request.headers.get("content-type")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        has_body = request.headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in (
            request.headers
        )
        if (content_type is not None or has_body) and media != "application/json":
            return JSONResponse(
                {"error": "admin writes take a JSON body (Content-Type: application/json)"}, 415
            )
    return None


def redact(secret: str | None) -> str | None:
    """Show only the first 4 characters of a secret."""
    return None if secret is None else secret[:4] + "…"


def token_view(t: Token) -> dict[str, Any]:
    """A token with its secret parts redacted."""
    return {
        "token": redact(t.token),
        "app_id": t.app_id,
        "user_id": t.user_id,
        "advertiser_ids": t.advertiser_ids,
        "expires_at": t.expires_at,
        "revoked": t.revoked,
        "has_refresh_token": t.refresh_token is not None,
    }


def members_hex(aud_members: Mapping[str, Iterable[bytes]]) -> dict[str, list[str]]:
    """Member hashes per schema as sorted lowercase hex."""
    return {schema: sorted(h.hex() for h in hashes) for schema, hashes in aud_members.items()}


def admin_routes(emu: Emulator) -> list[Route]:
    """All admin routes bound to one emulator."""

    def state() -> State:
        return emu.state_ref.state

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise AdminError("body must be a JSON object")
        return value

    def audience_or_404(audience_id: str) -> Any:
        aud = state().audiences.get(audience_id)
        if aud is None:
            raise AdminError(f"no audience {audience_id}")
        return aud

    def advertiser_or_404(advertiser_id: str) -> Any:
        adv = state().advertisers.get(advertiser_id)
        if adv is None:
            raise AdminError(f"no advertiser {advertiser_id}")
        return adv

    async def reset(request: Request) -> Response:
        b = await body(request)
        deterministic = b.get("deterministic_ids")
        emu.reset(
            str(b.get("seed", "demo")),
            b.get("variants"),
            deterministic_ids=None if deterministic is None else bool(deterministic),
        )
        return JSONResponse(emu.seed_info(str(request.base_url)))

    async def get_variants(request: Request) -> Response:
        return JSONResponse(
            {
                "variants": state().config.variants,
                "available": {
                    v.name: {"behaviour": v.behaviour, "known": v.known} for v in VARIANTS.values()
                },
            }
        )

    async def set_variants(request: Request) -> Response:
        b = await body(request)
        state().config.variants = parse_variants(b.get("variants") or [])
        if "partner_names" in b:
            state().config.partner_names = [str(n) for n in b["partner_names"] or []]
        state().touch()
        return JSONResponse(
            {"variants": state().config.variants, "partner_names": state().config.partner_names}
        )

    async def seed(request: Request) -> Response:
        return JSONResponse(emu.seed_info(str(request.base_url)))

    async def get_state(request: Request) -> Response:
        s = state()
        now = s.clock.now()
        with_members = request.query_params.get("members") == "true"
        audiences = []
        for aud in s.audiences.values():
            item = audience_details(aud, aud.owner_id, now)
            item.update(
                deleted=aud.deleted,
                shared_with=aud.shared_with,
                member_counts={k: len(v) for k, v in aud.members.items()},
            )
            if with_members:
                item["members"] = members_hex(aud.members)
            audiences.append(item)
        return JSONResponse(
            {
                "now": now,
                "clock_offset": s.clock.offset,
                "config": s.meta_dict()["config"],
                "apps": [
                    {"app_id": a.app_id, "name": a.name, "tier": a.tier, "secret": redact(a.secret)}
                    for a in s.apps.values()
                ],
                "business_centers": [{"bc_id": b.bc_id, "name": b.name} for b in s.bcs.values()],
                "advertisers": [
                    {"advertiser_id": a.advertiser_id, "name": a.name, "bc_id": a.bc_id, "status": a.status}
                    for a in s.advertisers.values()
                ],
                "users": [{"user_id": u.user_id, "name": u.name, "roles": u.roles} for u in s.users.values()],
                "tokens": [token_view(t) for t in s.tokens.values()],
                "audiences": audiences,
                "uploads": [
                    {"file_path": u.file_path, "advertiser_id": u.advertiser_id, "rows": u.rows}
                    for u in s.uploads.values()
                ],
                "event_sets": [
                    {
                        "event_set_id": e.event_set_id,
                        "advertiser_id": e.advertiser_id,
                        "name": e.name,
                        "kind": e.kind,
                    }
                    for e in s.event_sets.values()
                ],
                "events": vars(s.event_stats) | {"dedupe_keys": len(s.dedupe)},
                "rate_limits": s.rate_limits,
                "faults": {
                    **emu.faults.config.as_dict(),
                    "injected": emu.faults.injected,
                    "dropped": emu.faults.dropped,
                },
            }
        )

    async def set_rate_limit(request: Request) -> Response:
        b = await body(request)
        group = b.get("group", "default")
        if group not in GROUPS:
            raise AdminError(f"group must be one of {GROUPS}")
        key = f"{b.get('app_id') or '*'}:{group}"
        limits: dict[str, int | None] = {name: b[name] for name in ("qps", "qpm", "qpd") if name in b}
        state().rate_limits[key] = limits
        emu.limiter.reset()
        state().touch()
        return JSONResponse({"key": key, "limits": limits})

    async def set_faults(request: Request) -> Response:
        b = await body(request)
        config = FaultConfig(
            rate=float(b.get("rate", 0.0)),
            codes=[int(c) for c in b.get("codes", [50000])],
            latency_ms=int(b.get("latency_ms", 0)),
            drop_rate=float(b.get("drop_rate", 0.0)),
            drop_response_rate=float(b.get("drop_response_rate", 0.0)),
            seed=int(b.get("seed", 0)),
            paths=b.get("paths"),
        )
        emu.faults.configure(config)
        return JSONResponse(config.as_dict())

    async def clear_faults(request: Request) -> Response:
        emu.faults.clear()
        return JSONResponse(emu.faults.config.as_dict())

    async def advance_clock(request: Request) -> Response:
        seconds = float((await body(request)).get("seconds", 0))
        now = state().clock.advance(seconds)
        state().touch()
        return JSONResponse({"now": now, "offset": state().clock.offset})

    async def set_config(request: Request) -> Response:
        b = await body(request)
        cfg = state().config
        for name, kind in (
            ("processing_delay", float),
            ("mapping_limit", int),
            ("audience_cap", int),
            ("max_stored_events", int),
            ("dedupe_window", float),
        ):
            if name in b:
                setattr(cfg, name, kind(b[name]))
        state().touch()
        return JSONResponse(state().meta_dict()["config"])

    async def get_audience(request: Request) -> Response:
        aud = audience_or_404(request.path_params["audience_id"])
        item = audience_details(aud, aud.owner_id, state().clock.now())
        item.update(
            deleted=aud.deleted,
            shared_with=aud.shared_with,
            history=aud.history,
            member_counts={k: len(v) for k, v in aud.members.items()},
        )
        return JSONResponse(item)

    async def get_members(request: Request) -> Response:
        aud = audience_or_404(request.path_params["audience_id"])
        return JSONResponse(members_hex(aud.members))

    async def expire_audience(request: Request) -> Response:
        aud = audience_or_404(request.path_params["audience_id"])
        aud.expires_at = state().clock.now()
        state().touch()
        return JSONResponse({"audience_id": aud.audience_id, "expired": True})

    async def remove_audience(request: Request) -> Response:
        aud = audience_or_404(request.path_params["audience_id"])
        delete_audience(state(), aud, state().clock.now())
        return JSONResponse({"audience_id": aud.audience_id, "deleted": True})

    async def events(request: Request) -> Response:
        s = state()
        source = request.path_params["source_id"]
        test = request.query_params.get("test") == "true"
        batches = (s.test_event_batches if test else s.event_batches).get(source, [])
        items: list[Any] = []
        for batch in batches:
            items.extend(batch.items())
        return JSONResponse({"events": items})

    async def advertiser_status(request: Request) -> Response:
        adv = advertiser_or_404(request.path_params["advertiser_id"])
        adv.status = {"delete": "deleted", "unapprove": "unapproved", "approve": "approved"}[
            request.path_params["op"]
        ]
        state().touch()
        return JSONResponse({"advertiser_id": adv.advertiser_id, "status": adv.status})

    async def fill_audiences(request: Request) -> Response:
        adv = advertiser_or_404(request.path_params["advertiser_id"])
        count = int((await body(request)).get("count", state().config.audience_cap))
        s = state()
        now = s.clock.now()
        made = 0
        while made < count and live_audience_count(s, adv.advertiser_id) < s.config.audience_cap:
            kind = PARTNER if made % 2 == 0 else CUSTOMER_FILE
            calc = "MULTIPLE_TYPES" if kind == PARTNER else "EMAIL_SHA256"
            create_audience(s, adv.advertiser_id, f"filler {made + 1}", kind, calc, now)
            made += 1
        return JSONResponse({"created": made, "total": live_audience_count(s, adv.advertiser_id)})

    def user_with_role(name: str, advertiser_ids: list[str], role: str) -> User:
        if role not in ROLES:
            raise AdminError(f"role must be one of {ROLES}")
        s = state()
        user = next((u for u in s.users.values() if u.name == name or u.user_id == name), None)
        if user is None:
            user = User(user_id=s.ids.numeric(), name=name)
            s.users[user.user_id] = user
        for adv_id in advertiser_ids:
            advertiser_or_404(adv_id)
            user.roles[adv_id] = role
        return user

    def default_app_id(b: dict[str, Any]) -> str:
        app_id = b.get("app_id") or next(iter(state().apps), None)
        if app_id is None or app_id not in state().apps:
            raise AdminError("no such app")
        return str(app_id)

    async def create_token(request: Request) -> Response:
        b = await body(request)
        s = state()
        adv_ids = [str(a) for a in b.get("advertiser_ids", [])]
        user = user_with_role(str(b.get("user", "user")), adv_ids, str(b.get("role", "Operator")))
        expires_in = b.get("expires_in")
        if b.get("with_refresh") and expires_in is None:
            expires_in = 86_400
        now = s.clock.now()
        token = issue_token(s, default_app_id(b), user.user_id, adv_ids, now, expires_in)
        return JSONResponse(
            {
                "access_token": token.token,
                "refresh_token": token.refresh_token,
                "user_id": user.user_id,
                "advertiser_ids": adv_ids,
                "expires_in": None if token.expires_at is None else int(token.expires_at - now),
            }
        )

    async def revoke(request: Request) -> Response:
        token = state().tokens.get(str((await body(request)).get("token", "")))
        if token is None:
            raise AdminError("no such token")
        token.revoked = True
        state().touch()
        return JSONResponse({"revoked": True})

    async def auth_code(request: Request) -> Response:
        b = await body(request)
        s = state()
        adv_ids = [str(a) for a in b.get("advertiser_ids", [])]
        user = user_with_role(str(b.get("user", "user")), adv_ids, str(b.get("role", "Operator")))
        code = AuthCode(
            code=s.ids.hex_token(16),
            app_id=default_app_id(b),
            user_id=user.user_id,
            advertiser_ids=adv_ids,
            expires_at=s.clock.now() + s.config.auth_code_ttl,
        )
        s.auth_codes[code.code] = code
        s.touch()
        return JSONResponse({"auth_code": code.code})

    async def update_app(request: Request) -> Response:
        app = state().apps.get(request.path_params["app_id"])
        if app is None:
            raise AdminError("no such app")
        b = await body(request)
        if "tier" in b:
            app.tier = str(b["tier"])
        if "token_expires_in" in b:
            app.token_expires_in = None if b["token_expires_in"] is None else int(b["token_expires_in"])
        emu.limiter.reset()
        state().touch()
        return JSONResponse(
            {"app_id": app.app_id, "tier": app.tier, "token_expires_in": app.token_expires_in}
        )

    async def create_event_set(request: Request) -> Response:
        b = await body(request)
        s = state()
        adv = advertiser_or_404(str(b.get("advertiser_id", "")))
        kind = str(b.get("kind", "offline"))
        if kind not in ("offline", "crm", "web", "app"):
            raise AdminError("kind must be offline, crm, web or app")
        now = s.clock.now()
        es = EventSet(
            event_set_id=s.ids.numeric(),
            advertiser_id=adv.advertiser_id,
            name=str(b.get("name", f"{kind} source")),
            kind=kind,  # type: ignore[arg-type]
            created_at=now,
            updated_at=now,
        )
        s.event_sets[es.event_set_id] = es
        s.touch()
        return JSONResponse({"event_set_id": es.event_set_id, "kind": kind})

    def wrap(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            refused = check_admin_request(request, emu.admin_token)
            if refused is not None:
                return refused
            try:
                response: Response = await fn(request)
            except (AdminError, ValueError, TypeError, KeyError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return response

        return endpoint

    p = ADMIN_PREFIX
    table: list[tuple[str, Any, list[str]]] = [
        ("/reset", reset, ["POST"]),
        ("/seed", seed, ["GET"]),
        ("/state", get_state, ["GET"]),
        ("/rate_limits", set_rate_limit, ["POST"]),
        ("/faults", set_faults, ["POST"]),
        ("/faults", clear_faults, ["DELETE"]),
        ("/clock/advance", advance_clock, ["POST"]),
        ("/config", set_config, ["POST"]),
        ("/variants", get_variants, ["GET"]),
        ("/variants", set_variants, ["POST"]),
        ("/audiences/{audience_id}", get_audience, ["GET"]),
        ("/audiences/{audience_id}/members", get_members, ["GET"]),
        ("/audiences/{audience_id}/expire", expire_audience, ["POST"]),
        ("/audiences/{audience_id}/delete", remove_audience, ["POST"]),
        ("/events/{source_id}", events, ["GET"]),
        ("/advertisers/{advertiser_id}/fill_audiences", fill_audiences, ["POST"]),
        ("/advertisers/{advertiser_id}/{op:str}", advertiser_status, ["POST"]),
        ("/tokens", create_token, ["POST"]),
        ("/tokens/revoke", revoke, ["POST"]),
        ("/auth_codes", auth_code, ["POST"]),
        ("/apps/{app_id}", update_app, ["POST"]),
        ("/event_sets", create_event_set, ["POST"]),
    ]
    routes: list[Route] = []
    for path, fn, methods in table:
        routes.append(Route(p + path, wrap(fn), methods=methods))
    return routes
