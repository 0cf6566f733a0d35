"""The emulator as one ASGI application: /open_api/v1.3/ (raw, fast), /_emulator/ admin and /portal/auth."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from ttsync.emulator.admin import admin_routes
from ttsync.emulator.api import API_PREFIX, ApiApp, StateRef
from ttsync.emulator.faults import FaultInjector
from ttsync.emulator.model import State
from ttsync.emulator.persistence import Persistence
from ttsync.emulator.portal import portal_routes
from ttsync.emulator.ratelimit import RateLimiter
from ttsync.emulator.seed import build_state
from ttsync.emulator.variants import parse_variants


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 404:
        return PlainTextResponse("404 page not found", status_code=404)
    return PlainTextResponse(str(getattr(exc, "detail", "error")), status_code=status)


class Emulator:
    """The emulator application. Call it as an ASGI app; ``reset`` swaps in a freshly seeded state."""

    def __init__(
        self,
        state: State | None = None,
        *,
        persistence: Persistence | None = None,
        variants: list[str] | None = None,
        admin_token: str | None = None,
        deterministic_ids: bool = False,
    ) -> None:
        self.persistence = persistence
        # Per process, never persisted: whoever reads the seed-out file (or the start line) may use the admin API.
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.deterministic_ids = deterministic_ids
        self.state_ref = StateRef(
            state if state is not None else build_state("demo", deterministic_ids=deterministic_ids)
        )
        # Variants chosen when the server started (`serve --variant`); a reset without its own list keeps them.
        self.variants = parse_variants(variants or [])
        if variants is not None:
            self.state_ref.state.config.variants = list(self.variants)
        self.faults = FaultInjector()
        self.limiter = RateLimiter()
        self.api = ApiApp(self.state_ref, self.faults, self.limiter)
        self.web = Starlette(
            routes=[*admin_routes(self), *portal_routes(self)],
            exception_handlers={HTTPException: _not_found, 404: _not_found},
        )
        if persistence is not None:
            persistence.attach(self.state_ref.state)

    @property
    def state(self) -> State:
        """The current state."""
        return self.state_ref.state

    def reset(
        self, seed: str = "demo", variants: list[str] | None = None, *, deterministic_ids: bool | None = None
    ) -> State:
        """Replace the whole state with a fresh seed; clears faults and rate-limit counters.

        ``variants`` selects behaviour variants for the new state; None keeps the server's own (``--variant``).
        ``deterministic_ids`` makes ids created after seeding repeat from run to run; None keeps the current choice.
        """
        if deterministic_ids is not None:
            self.deterministic_ids = deterministic_ids
        chosen = parse_variants(variants) if variants is not None else list(self.variants)
        state = build_state(seed, deterministic_ids=self.deterministic_ids)
        state.config.variants = chosen
        self.state_ref.state = state
        self.faults.clear()
        self.limiter.reset()
        if self.persistence is not None:
            self.persistence.attach(state, rewrite=True)
        return state

    def seed_info(self, root_url: str) -> dict[str, Any]:
        """The seed-out document (exact keys of ``--seed-out``) for a server reachable at ``root_url``."""
        return {
            "base_url": root_url.rstrip("/") + API_PREFIX,
            **self.state.seed_info,
            "admin_token": self.admin_token,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await self.api(scope, receive, send)
        else:
            await self.web(scope, receive, send)
