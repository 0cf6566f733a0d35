"""The OAuth consent page, ``/portal/auth`` (ref §4.1, §4.2).

GET renders a page where a person picks an emulator user and confirms; POST issues a single-use auth code
(valid 1 hour of emulator time) and redirects to ``redirect_uri?auth_code=...&code=...&state=...``.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ttsync.emulator.model import AuthCode

if TYPE_CHECKING:
    from ttsync.emulator.app import Emulator

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {app_name} — ttsync emulator</title></head>
<body>
<h1>Authorize {app_name}</h1>
<p>This is the ttsync TikTok emulator (sandbox). Pick the user whose advertiser accounts the app may use.</p>
<form method="post" action="/portal/auth">
<input type="hidden" name="app_id" value="{app_id}">
<input type="hidden" name="state" value="{state}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<fieldset><legend>User</legend>
{users}
</fieldset>
<button type="submit" name="confirm" value="yes">Confirm</button>
</form>
</body></html>
"""


def _error(message: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><title>Error</title><p>{escape(message)}</p>", status_code=400)


def portal_routes(emu: Emulator) -> list[Route]:
    """Consent page routes bound to one emulator."""

    async def show(request: Request) -> Response:
        q = request.query_params
        state = emu.state_ref.state
        app = state.apps.get(q.get("app_id", ""))
        if app is None:
            return _error("Unknown app_id.")
        if not q.get("redirect_uri"):
            return _error("redirect_uri is required.")
        rows = []
        for n, user in enumerate(state.users.values()):
            roles = ", ".join(f"{adv} ({role})" for adv, role in user.roles.items()) or "no advertisers"
            checked = " checked" if n == 0 else ""
            rows.append(
                f'<label><input type="radio" name="user_id" value="{escape(user.user_id)}"{checked}> '
                f"{escape(user.name)} — {escape(roles)}</label><br>"
            )
        html = _PAGE.format(
            app_name=escape(app.name),
            app_id=escape(app.app_id),
            state=escape(q.get("state", "")),
            redirect_uri=escape(q.get("redirect_uri", "")),
            users="\n".join(rows),
        )
        return HTMLResponse(html)

    async def confirm(request: Request) -> Response:
        async with request.form() as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        state = emu.state_ref.state
        app = state.apps.get(fields.get("app_id", ""))
        user = state.users.get(fields.get("user_id", ""))
        redirect_uri = fields.get("redirect_uri", "")
        if app is None or user is None or not redirect_uri:
            return _error("Pick a user of a known app, with a redirect_uri.")
        advertiser_ids = [
            adv_id
            for adv_id in user.roles
            if adv_id in state.advertisers and state.advertisers[adv_id].status != "deleted"
        ]
        code = AuthCode(
            code=state.ids.hex_token(16),
            app_id=app.app_id,
            user_id=user.user_id,
            advertiser_ids=advertiser_ids,
            expires_at=state.clock.now() + state.config.auth_code_ttl,
        )
        state.auth_codes[code.code] = code
        state.touch()
        # TikTok sends both auth_code and code (ref §4.2).
        extra = urlencode({"auth_code": code.code, "code": code.code, "state": fields.get("state", "")})
        parts = urlsplit(redirect_uri)
        query = f"{parts.query}&{extra}" if parts.query else extra
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)

    return [Route("/portal/auth", show, methods=["GET"]), Route("/portal/auth", confirm, methods=["POST"])]
