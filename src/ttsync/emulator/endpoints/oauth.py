"""OAuth endpoints of the Marketing API (ref §4) and the creator-token refresh endpoint."""

from __future__ import annotations

from ttsync.emulator.endpoints.common import Ctx, JsonDict, endpoint
from ttsync.emulator.errors import (
    APP_MISMATCH,
    INVALID_AUTH_CODE,
    INVALID_AUTH_PARAMS,
    INVALID_GRANT_TYPE,
    INVALID_REFRESH_TOKEN,
    REFRESH_TOKEN_EXPIRED,
    TOKEN_INVALID,
    ApiError,
)
from ttsync.emulator.model import App, State, Token
from ttsync.emulator.validate import opt_bool, req_str

REFRESH_TOKEN_TTL = 365 * 86_400.0  # creator refresh tokens live a year (ref §4.4)


def _app(state: State, app_id: str, secret: str) -> App:
    app = state.apps.get(app_id)
    if app is None or app.secret != secret:
        raise ApiError(INVALID_AUTH_PARAMS, "Invalid app_id or secret.")
    return app


def issue_token(
    state: State, app_id: str, user_id: str, advertiser_ids: list[str], now: float, expires_in: int | None
) -> Token:
    """Create an access token; tokens with an expiry also get a refresh token (ref §4.4)."""
    token = Token(
        token=state.ids.hex_token(),
        app_id=app_id,
        user_id=user_id,
        advertiser_ids=list(advertiser_ids),
        created_at=now,
    )
    if expires_in is not None:
        token.expires_at = now + expires_in
        token.refresh_token = state.ids.hex_token()
        token.refresh_expires_at = now + REFRESH_TOKEN_TTL
        state.refresh_tokens[token.refresh_token] = token.token
    state.tokens[token.token] = token
    state.touch()
    return token


def token_payload(token: Token, now: float) -> JsonDict:
    """The data block of a token answer."""
    data: JsonDict = {
        "access_token": token.token,
        "advertiser_ids": list(token.advertiser_ids),
        "scope": list(token.scope),
    }
    if token.expires_at is not None:
        data.update(
            token_type="Bearer",  # noqa: S106 (a token kind, not a secret)
            expires_in=int(token.expires_at - now),
            refresh_token=token.refresh_token,
            refresh_token_expires_in=int((token.refresh_expires_at or now) - now),
        )
    return data


@endpoint("oauth2/access_token/", "POST", auth=False)
def access_token(ctx: Ctx) -> JsonDict:
    """Exchange a single-use auth code (valid 1 hour) for an access token (ref §4.2, §4.3)."""
    p = ctx.params
    app = _app(ctx.state, req_str(p, "app_id"), req_str(p, "secret"))
    code_value = req_str(p, "auth_code")
    code = ctx.state.auth_codes.get(code_value)
    if code is None or code.used or code.app_id != app.app_id or ctx.now >= code.expires_at:
        raise ApiError(
            INVALID_AUTH_CODE, "The auth_code is invalid: it was cancelled, already used or expired."
        )
    code.used = True
    token = issue_token(
        ctx.state, app.app_id, code.user_id, code.advertiser_ids, ctx.now, app.token_expires_in
    )
    data = token_payload(token, ctx.now)
    if not opt_bool(p, "return_advertiser_ids", True):
        data.pop("advertiser_ids")
    return data


@endpoint("oauth2/advertiser/get/", "GET")
def advertiser_get(ctx: Ctx) -> JsonDict:
    """Advertisers this token reaches (ref §4.5)."""
    token = ctx.token
    assert token is not None
    app_id = req_str(ctx.params, "app_id")
    secret = req_str(ctx.params, "secret")
    if app_id != token.app_id:
        raise ApiError(APP_MISMATCH, "The app_id is inconsistent with the token's app information.")
    _app(ctx.state, app_id, secret)
    rows = []
    for adv_id in token.advertiser_ids:
        adv = ctx.state.advertisers.get(adv_id)
        if adv is not None and adv.status != "deleted":
            rows.append({"advertiser_id": adv.advertiser_id, "advertiser_name": adv.name})
    return {"list": rows}


@endpoint("oauth2/revoke_token/", "POST", auth=False)
def revoke_token(ctx: Ctx) -> JsonDict:
    """Revoke an access token; returns the advertisers that lost access (ref §4.6)."""
    p = ctx.params
    app = _app(ctx.state, req_str(p, "app_id"), req_str(p, "secret"))
    token = ctx.state.tokens.get(req_str(p, "access_token"))
    if token is None or token.revoked:
        raise ApiError(TOKEN_INVALID, "Access token is invalid or has been revoked.")
    if token.app_id != app.app_id:
        raise ApiError(APP_MISMATCH, "The app_id is inconsistent with the token's app information.")
    token.revoked = True
    ctx.state.touch()
    return {"app_id": app.app_id, "advertiser_ids": list(token.advertiser_ids)}


@endpoint("oauth2/refresh_token/", "POST", auth=False)
def marketing_refresh(ctx: Ctx) -> JsonDict:
    """Marketing API tokens do not refresh: TikTok answers 40107 (ref §4.4, §9)."""
    raise ApiError(
        INVALID_REFRESH_TOKEN,
        "Invalid refresh token: using a refresh token to refresh a long-term access token for "
        "Marketing API is not supported.",
    )


@endpoint("tt_user/oauth2/refresh_token/", "POST", auth=False)
def tt_user_refresh(ctx: Ctx) -> JsonDict:
    """Refresh an expiring token: rotates both the access and the refresh token (ref §4.4)."""
    p = ctx.params
    app = _app(ctx.state, req_str(p, "client_id"), req_str(p, "client_secret"))
    if req_str(p, "grant_type") != "refresh_token":
        raise ApiError(INVALID_GRANT_TYPE, "Invalid grant_type: must be refresh_token.")
    old_access = ctx.state.refresh_tokens.get(req_str(p, "refresh_token"))
    old = ctx.state.tokens.get(old_access) if old_access else None
    if old is None or old.revoked or old.app_id != app.app_id:
        raise ApiError(INVALID_REFRESH_TOKEN, "Invalid refresh token.")
    if old.refresh_expires_at is not None and ctx.now >= old.refresh_expires_at:
        raise ApiError(REFRESH_TOKEN_EXPIRED, "Refresh token has expired. Please re-authorize.")
    expires_in = int(old.expires_at - old.created_at) if old.expires_at is not None else 86_400
    old.revoked = True
    if old.refresh_token:
        ctx.state.refresh_tokens.pop(old.refresh_token, None)
    token = issue_token(ctx.state, app.app_id, old.user_id, old.advertiser_ids, ctx.now, expires_in)
    return token_payload(token, ctx.now)
