"""Admin routes that look: the whole state, one audience and its members, stored events; expire or delete an audience."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ttsync.emulator.admin_context import AdminContext, members_hex, redact, token_view
from ttsync.emulator.ops import delete_audience
from ttsync.emulator.views import audience_details


def routes(ctx: AdminContext) -> list[tuple[str, Any, list[str]]]:
    """(path, handler, methods) of these admin routes, bound to one emulator."""
    emu, state, audience_or_404 = ctx.emu, ctx.state, ctx.audience_or_404

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

    return [
        ("/state", get_state, ["GET"]),
        ("/audiences/{audience_id}", get_audience, ["GET"]),
        ("/audiences/{audience_id}/members", get_members, ["GET"]),
        ("/audiences/{audience_id}/expire", expire_audience, ["POST"]),
        ("/audiences/{audience_id}/delete", remove_audience, ["POST"]),
        ("/events/{source_id}", events, ["GET"]),
    ]
