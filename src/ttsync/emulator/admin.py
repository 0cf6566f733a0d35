"""The admin API under /_emulator/ (never under /open_api/): seed, inspect, configure, provoke conditions.

Its routes live by concern in `admin_routes` (conditions, inspection, accounts), sharing `admin_context`.

The admin API can reset the emulator and read every token, so it is guarded against other local processes and
web pages: each request needs the per-process admin token (``Authorization: Bearer TOKEN``, printed at start
and written to the ``--seed-out`` file), a loopback ``Host`` header (a web page reaching the port through DNS
rebinding sends its own host name), no foreign ``Origin``, and writes need a JSON content type (an HTML form
can only post form or text bodies without a CORS preflight).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ttsync.emulator.admin_context import AdminContext, AdminError
from ttsync.emulator.admin_routes import accounts, conditions, inspection

if TYPE_CHECKING:
    from ttsync.emulator.app import Emulator

ADMIN_PREFIX = "/_emulator"
ADMIN_TOKEN_HEADER = "authorization"  # noqa: S105 (a header name, not a secret)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def admin_routes(emu: Emulator) -> list[Route]:
    """All admin routes bound to one emulator."""
    ctx = AdminContext(emu)

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

    table = [*conditions.routes(ctx), *inspection.routes(ctx), *accounts.routes(ctx)]
    return [Route(ADMIN_PREFIX + path, wrap(fn), methods=methods) for path, fn, methods in table]
