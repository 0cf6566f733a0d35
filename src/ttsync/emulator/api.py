"""The /open_api/v1.3/ surface as a lean raw ASGI handler (no framework per request: it must carry ~100k
events/s and ~500k mapping ids/s in one process).

Order per request: route (plain-text 404 otherwise, ref §1) → injected faults → rate limit of a valid token's
app, on arrival (ref §5.2) → body/query parsing → Access-Token (ref §1, §8.2) → rate limit of an app named in
the parameters (OAuth) → handler → envelope ``{code, message, request_id, data}`` with HTTP 200 (ref §1).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ttsync.emulator import endpoints as _endpoints  # noqa: F401  (registers the handlers)
from ttsync.emulator.endpoints.common import REGISTRY, Ctx, Endpoint
from ttsync.emulator.errors import (
    CANNED_MESSAGES,
    PARAM_ERROR,
    SYSTEM_ERROR,
    TOKEN_EMPTY,
    TOKEN_EMPTY_MESSAGE,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    ApiError,
)
from ttsync.emulator.faults import NO_FAULT, FaultInjector
from ttsync.emulator.ids import request_id
from ttsync.emulator.model import State, Token
from ttsync.emulator.ratelimit import Limits, RateLimiter, default_limits, group_of

log = logging.getLogger("ttsync.emulator")

API_PREFIX = "/open_api/v1.3/"
_NOT_FOUND = b"404 page not found"
_GATEWAY_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"


async def plain_404(send: Send) -> None:
    """TikTok's answer for an unknown path or a missing trailing slash (ref §1)."""
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"18")],
        }
    )
    await send({"type": "http.response.body", "body": _NOT_FOUND})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _drop_connection(send: Send) -> bool:
    """Close the socket without any response. Needs uvicorn's protocol object behind ``send``.

    ASGI has no "close without answering" message, so we reach the transport of uvicorn's request cycle
    (``send`` is its bound method) and mark the cycle disconnected so uvicorn does not write a 500 either.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    cycle.disconnected = True  # type: ignore[union-attr]
    transport.close()
    return True


class ApiApp:
    """ASGI handler for everything under /open_api/v1.3/."""

    def __init__(self, state_ref: StateRef, faults: FaultInjector, limiter: RateLimiter) -> None:
        self.state_ref = state_ref
        self.faults = faults
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(API_PREFIX) :]
        methods = REGISTRY.get(path)
        if (
            methods is None
            and not path.endswith("/")
            and self.state_ref.state.config.has("no-trailing-slash")
        ):
            # Variant: TikTok documents a 404 without the slash (ref §1), but Segment calls
            # `dmp/custom_audience/get` without it and parses JSON (ref §9): serve it as the slashed path.
            path += "/"
            methods = REGISTRY.get(path)
        method = scope["method"]
        ep = methods.get(method) if methods else None
        if ep is None:
            await plain_404(send)
            return
        decision = self.faults.decide(path) if self.faults.active else NO_FAULT
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.action == "drop" and _drop_connection(send):
            return
        if decision.action == "code" and decision.code < 1000:
            # An HTTP-level failure such as a gateway 502 with an HTML body (ref §1, RS observation).
            await _send_raw(send, decision.code, _GATEWAY_HTML, b"text/html")
            return
        state = self.state_ref.state
        now = state.clock.now()
        rid = request_id(now)
        try:
            if decision.action == "code":
                raise ApiError(decision.code, CANNED_MESSAGES.get(decision.code, "System error"))
            ctx = await self._context(scope, receive, state, path, method, ep, now)
            data = ep.handler(ctx)
            payload: dict[str, Any] = {"code": 0, "message": "OK", "request_id": rid, "data": data}
        except ApiError as exc:
            payload = {"code": exc.code, "message": exc.message, "request_id": rid, "data": {}}
        except Exception:
            log.exception("emulator handler failed for %s", path)
            payload = {"code": SYSTEM_ERROR, "message": "System error", "request_id": rid, "data": {}}
        if decision.action == "drop_response" and _drop_connection(send):
            return  # applied, but the answer is lost
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        await _send_raw(send, 200, body, b"application/json", rid.encode())

    async def _context(
        self, scope: Scope, receive: Receive, state: State, path: str, method: str, ep: Endpoint, now: float
    ) -> Ctx:
        params: dict[str, Any]
        form: dict[str, Any] = {}
        raw = b""
        # A request with a valid token is counted against its app's rate limit as it arrives, before its body
        # is read: with many large bodies uploading at once, bodies finish out of arrival order, and counting
        # them then would count requests that arrived after this one in its window (ref §5.2 counts arrivals).
        counted = ep.auth and self._count_arrival(scope, state, path, now)
        if ep.multipart:
            request = Request(scope, receive)
            async with request.form(max_files=1, max_fields=50, max_part_size=64 * 1024 * 1024) as parsed:
                for key, value in parsed.multi_items():
                    form[key] = value if isinstance(value, str) else (value.filename, await value.read())
            params = {k: v for k, v in form.items() if isinstance(v, str)}
        elif method == "GET":
            params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        else:
            raw = await _read_body(receive)
            fast = ep.parse(raw) if ep.parse is not None else None
            params = fast if fast is not None else _parse_json(raw)
        ctx = Ctx(state=state, path=path, method=method, params=params, now=now, body=raw, form=form)
        app_id: str | None
        if ep.auth:
            ctx.token = _authenticate(scope, state, now)
            app_id = ctx.token.app_id
        else:
            candidate = params.get("app_id") or params.get("client_id")
            app_id = candidate if isinstance(candidate, str) and candidate in state.apps else None
        if app_id is not None and not counted:
            group = group_of(path)
            self.limiter.check(app_id, group, limits_for(state, app_id, group), now)
        return ctx

    def _count_arrival(self, scope: Scope, state: State, path: str, now: float) -> bool:
        """Check the rate limit of the app whose valid token `scope` carries; False (nothing counted) without
        one: the token's error then comes after the body's, in the usual order."""
        try:
            app_id = _authenticate(scope, state, now).app_id
        except ApiError:
            return False
        group = group_of(path)
        self.limiter.check(app_id, group, limits_for(state, app_id, group), now)
        return True


class StateRef:
    """The current State; the admin reset swaps in a new one without restarting the server."""

    def __init__(self, state: State) -> None:
        self.state = state


def limits_for(state: State, app_id: str, group: str) -> Limits:
    """Tier defaults (ref §5.2) overridden by admin settings for this app or all apps."""
    app = state.apps.get(app_id)
    limits = default_limits(app.tier if app else "basic", group)
    for key in (f"*:{group}", f"{app_id}:{group}"):
        override = state.rate_limits.get(key)
        if override:
            for name in ("qps", "qpm", "qpd"):
                if name in override:
                    setattr(limits, name, override[name])
    return limits


def _parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        # orjson parses an events batch several times faster; it accepts a subset of what `json` accepts (no
        # NaN, no integer beyond 64 bits, no lone surrogate) with the same result, so `json` decides the rest.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(raw)
        except ValueError:
            raise ApiError(PARAM_ERROR, "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(PARAM_ERROR, "Request body must be a JSON object")
    return value


def _authenticate(scope: Scope, state: State, now: float) -> Token:
    header = None
    for name, value in scope["headers"]:
        if name == b"access-token":
            header = value.decode("latin-1").strip()
            break
    if not header:
        raise ApiError(TOKEN_EMPTY, TOKEN_EMPTY_MESSAGE)
    token = state.tokens.get(header)
    if token is None or token.revoked:
        raise ApiError(TOKEN_INVALID, "Access token is invalid or has been revoked.")
    if token.expires_at is not None and now >= token.expires_at:
        raise ApiError(TOKEN_EXPIRED, "Access token has expired. Please refresh it or re-authorize.")
    return token


async def _send_raw(
    send: Send, status: int, body: bytes, content_type: bytes, rid: bytes | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if rid is not None:
        headers.append((b"x-tt-logid", rid))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
