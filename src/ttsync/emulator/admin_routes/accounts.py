"""Admin routes that provoke account conditions: advertiser status, full audience quota, tokens, auth codes, app tiers, event sets."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ttsync.emulator.admin_context import AdminContext, AdminError
from ttsync.emulator.endpoints.oauth import issue_token
from ttsync.emulator.model import CUSTOMER_FILE, PARTNER, ROLES, AuthCode, EventSet, User
from ttsync.emulator.ops import create_audience, live_audience_count


def routes(ctx: AdminContext) -> list[tuple[str, Any, list[str]]]:
    """(path, handler, methods) of these admin routes, bound to one emulator."""
    emu, state, body, advertiser_or_404 = ctx.emu, ctx.state, ctx.body, ctx.advertiser_or_404

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

    return [
        ("/advertisers/{advertiser_id}/fill_audiences", fill_audiences, ["POST"]),
        ("/advertisers/{advertiser_id}/{op:str}", advertiser_status, ["POST"]),
        ("/tokens", create_token, ["POST"]),
        ("/tokens/revoke", revoke, ["POST"]),
        ("/auth_codes", auth_code, ["POST"]),
        ("/apps/{app_id}", update_app, ["POST"]),
        ("/event_sets", create_event_set, ["POST"]),
    ]
