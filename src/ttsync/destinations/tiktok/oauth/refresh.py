"""Refresh tokens before they expire (ref §4.4).

Marketing API tokens are long-lived and carry no refresh token; TikTok-account tokens expire (24 hours) and
come with a refresh token that `tt_user/oauth2/refresh_token/` exchanges for a new pair. The refresh rotates
the refresh token, so two refreshes racing with the same refresh token would make one of them fail: within a
process a lock serializes them, and across processes the loser re-reads the store and uses the token the
winner saved.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Final

from ttsync.config.models import Credential
from ttsync.destinations.tiktok.client import AuthenticationError
from ttsync.destinations.tiktok.oauth.clients import client_for, require_app_secret
from ttsync.store import Store, repos

DEFAULT_MARGIN_SECONDS: Final = 300.0
_LOCK = threading.Lock()


def needs_refresh(credential: Credential, *, margin_seconds: float, now: datetime | None = None) -> bool:
    """True when the token carries a refresh token and expires within `margin_seconds`."""
    if credential.refresh_token is None or credential.token_expires_at is None:
        return False
    current = now or datetime.now(UTC)
    return credential.token_expires_at - current <= timedelta(seconds=margin_seconds)


def ensure_fresh_token(
    store: Store,
    credential_name: str,
    *,
    margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    base_url: str | None = None,
) -> Credential:
    """The credential, with its token refreshed first when it has a refresh token and expires soon.

    Call before building a client for a run. Tokens without a refresh token are returned unchanged (ref §4.4:
    Marketing API tokens do not expire). Raises `AuthenticationError` (resolution `token_expired`) when the
    refresh is refused, e.g. the refresh token itself expired: the user must reauthorize.
    """
    credential = repos.get_credential(store, credential_name)
    if not needs_refresh(credential, margin_seconds=margin_seconds):
        return credential
    with _LOCK:
        credential = repos.get_credential(store, credential_name)  # another thread may have refreshed
        if not needs_refresh(credential, margin_seconds=margin_seconds):
            return credential
        require_app_secret(credential)
        assert credential.refresh_token is not None
        stale_token = credential.access_token
        try:
            with client_for(credential, base_url=base_url, with_token=False) as client:
                fresh = client.refresh_user_token(credential.refresh_token)
        except AuthenticationError as exc:
            current = repos.get_credential(store, credential_name)
            if current.access_token != stale_token and not needs_refresh(current, margin_seconds=0):
                return current  # another process refreshed first with the same refresh token
            raise AuthenticationError(
                f"the token of credential {credential_name!r} could not be refreshed ({exc.message}); "
                f"authorize again with `ttsync credentials reauthorize {credential_name}`",
                code=exc.code,
                endpoint=exc.endpoint,
                resolution_key="token_expired",
                request_id=exc.request_id,
            ) from None
        now = datetime.now(UTC)
        repos.update_credential_tokens(
            store,
            credential_name,
            access_token=fresh.access_token.get_secret_value(),
            refresh_token=(
                fresh.refresh_token.get_secret_value()
                if fresh.refresh_token
                else credential.refresh_token.get_secret_value()
            ),
            token_expires_at=now + timedelta(seconds=fresh.expires_in) if fresh.expires_in else None,
            refresh_token_expires_at=(
                now + timedelta(seconds=fresh.refresh_token_expires_in)
                if fresh.refresh_token_expires_in
                else credential.refresh_token_expires_at
            ),
        )
    return repos.get_credential(store, credential_name)
