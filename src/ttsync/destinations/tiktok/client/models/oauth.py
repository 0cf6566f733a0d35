"""OAuth endpoints (ref §4)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from ttsync.destinations.tiktok.client.models.common import ApiResult, Id, RequestModel, ResponseModel


class AccessTokenRequest(RequestModel):
    """`POST oauth2/access_token/` body (ref §4.3)."""

    app_id: Id
    secret: SecretStr
    auth_code: SecretStr


class AccessTokenResult(ApiResult):
    """A Marketing API token and the advertisers it reaches (ref §4.3)."""

    access_token: SecretStr
    advertiser_ids: list[str] = Field(default_factory=list)
    scope: list[int | str] = Field(default_factory=list)
    token_type: str | None = None
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_in: int | None = None
    open_id: str | None = None


class AdvertiserGetRequest(RequestModel):
    """`GET oauth2/advertiser/get/` query (ref §4.5)."""

    app_id: Id
    secret: SecretStr


class AuthorizedAdvertiser(ResponseModel):
    """One advertiser a token reaches."""

    advertiser_id: str
    advertiser_name: str = ""


class AdvertiserListResult(ApiResult):
    """`data.list` of `oauth2/advertiser/get/`."""

    advertisers: list[AuthorizedAdvertiser] = Field(default_factory=list, alias="list")


class RevokeTokenRequest(RequestModel):
    """`POST oauth2/revoke_token/` body (ref §4.6)."""

    app_id: Id
    secret: SecretStr
    access_token: SecretStr


class RevokeTokenResult(ApiResult):
    """The advertisers that lost access."""

    app_id: str | None = None
    advertiser_ids: list[str] = Field(default_factory=list)


class RefreshTokenRequest(RequestModel):
    """`POST tt_user/oauth2/refresh_token/` body (ref §4.4; TikTok-account tokens only)."""

    client_id: Id
    client_secret: SecretStr
    grant_type: str = "refresh_token"
    refresh_token: SecretStr


class RefreshTokenResult(ApiResult):
    """A refreshed TikTok-account token pair."""

    access_token: SecretStr
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_in: int | None = None
    open_id: str | None = None
    scope: str | list[int | str] | None = None
    token_type: str | None = None
