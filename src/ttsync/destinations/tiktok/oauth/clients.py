"""Build a TikTok client from a stored credential (the one place that turns a credential into a client)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from ttsync.config.models import Credential
from ttsync.destinations.tiktok.client import RetryPolicy, TikTokClient
from ttsync.destinations.tiktok.oauth.errors import CredentialFlowError
from ttsync.destinations.tiktok.settings import credential_base_url

PRODUCTION_PORTAL: Final = "https://business-api.tiktok.com/portal/auth"  # ref §4.1
API_PATH_MARKER: Final = "/open_api/"

# Checks should answer quickly: a couple of fault retries, never minutes of rate-limit waiting.
CHECK_RETRY: Final = RetryPolicy(
    max_attempts=2, max_total_seconds=15.0, wait_initial=0.2, wait_max=1.0, max_rate_limit_seconds=20.0
)


def require_app_secret(credential: Credential) -> None:
    """Refuse early, with the fix, when the credential has no app secret."""
    if credential.app_secret is None:
        raise CredentialFlowError(
            f"credential {credential.name!r} has no app secret: set `app_secret_env: VARIABLE` on it in "
            "ttsync.yaml, export that variable and run `ttsync apply -f ttsync.yaml`",
            resolution_key="configuration_error",
        )


def api_base_url(credential: Credential, environ: Mapping[str, str] | None = None) -> str:
    """The credential's API base URL; `$TTSYNC_SANDBOX_URL` from `environ` (default: the process's)."""
    return credential_base_url(credential, os.environ if environ is None else environ)


def portal_auth_url(credential: Credential, base_url: str | None = None) -> str:
    """The consent page: TikTok's for production (ref §4.1), the emulator's `/portal/auth` for sandbox."""
    if credential.environment == "production":
        return PRODUCTION_PORTAL
    api = urlsplit(base_url or api_base_url(credential))
    root = api.path.split(API_PATH_MARKER, 1)[0]
    return urlunsplit((api.scheme, api.netloc, root.rstrip("/") + "/portal/auth", "", ""))


def client_for(
    credential: Credential,
    *,
    base_url: str | None = None,
    with_token: bool = True,
    retry: RetryPolicy | None = None,
) -> TikTokClient:
    """A blocking client holding the credential's app id and secret (and access token unless told not)."""
    return TikTokClient(
        access_token=credential.access_token if with_token else None,
        app_id=credential.app_id,
        app_secret=credential.app_secret,
        base_url=base_url or api_base_url(credential),
        retry=retry,
    )
