"""Admin routes that set conditions: reset, seed, variants, rate limits, faults, the clock, limits."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ttsync.emulator.admin_context import AdminContext, AdminError
from ttsync.emulator.faults import FaultConfig
from ttsync.emulator.ratelimit import GROUPS
from ttsync.emulator.variants import VARIANTS, parse_variants


def routes(ctx: AdminContext) -> list[tuple[str, Any, list[str]]]:
    """(path, handler, methods) of these admin routes, bound to one emulator."""
    emu, state, body = ctx.emu, ctx.state, ctx.body

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

    return [
        ("/reset", reset, ["POST"]),
        ("/seed", seed, ["GET"]),
        ("/rate_limits", set_rate_limit, ["POST"]),
        ("/faults", set_faults, ["POST"]),
        ("/faults", clear_faults, ["DELETE"]),
        ("/clock/advance", advance_clock, ["POST"]),
        ("/config", set_config, ["POST"]),
        ("/variants", get_variants, ["GET"]),
        ("/variants", set_variants, ["POST"]),
    ]
