"""`ttsync credentials authorize`: TikTok's OAuth flow for the Marketing API (ref §4).

1. Build the authorization URL `{portal}/portal/auth?app_id=&state=&redirect_uri=` with a signed, expiring,
   single-use state (see `state.py`).
2. Receive TikTok's redirect on the loopback receiver (or take the address/code a person pastes).
3. Verify the state, exchange the auth code at `oauth2/access_token/`, and store the token encrypted with the
   advertiser ids it reaches (and the refresh token and expiry when TikTok issues them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from ttsync.config.models import Credential
from ttsync.destinations.tiktok.client import TikTokError
from ttsync.destinations.tiktok.oauth.clients import client_for, portal_auth_url, require_app_secret
from ttsync.destinations.tiktok.oauth.errors import CredentialFlowError
from ttsync.destinations.tiktok.oauth.receiver import Callback, LoopbackReceiver
from ttsync.destinations.tiktok.oauth.state import DEFAULT_STATE_TTL, StateSigner
from ttsync.store import Store, repos


@dataclass
class AuthorizeResult:
    """What an authorization stored (no secrets)."""

    credential: str
    advertiser_ids: list[str]
    previous_advertiser_ids: list[str] = field(default_factory=list)
    token_expires_at: datetime | None = None
    has_refresh_token: bool = False

    @property
    def gained(self) -> list[str]:
        """Advertisers reachable now that were not before."""
        return [a for a in self.advertiser_ids if a not in self.previous_advertiser_ids]

    @property
    def lost(self) -> list[str]:
        """Advertisers the previous authorization reached and this one does not."""
        return [a for a in self.previous_advertiser_ids if a not in self.advertiser_ids]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "credential": self.credential,
            "advertiser_ids": self.advertiser_ids,
            "gained_advertiser_ids": self.gained,
            "lost_advertiser_ids": self.lost,
            "token_expires_at": self.token_expires_at.isoformat() if self.token_expires_at else None,
            "has_refresh_token": self.has_refresh_token,
        }


class AuthorizeFlow:
    """One authorization attempt for one stored credential."""

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        credential_name: str,
        *,
        state_ttl: float = DEFAULT_STATE_TTL,
    ) -> None:
        self.store = store
        self.credential: Credential = repos.get_credential(store, credential_name)
        require_app_secret(self.credential)
        if not self.credential.redirect_uri:
            raise CredentialFlowError(
                f"credential {credential_name!r} has no redirect_uri: set `redirect_uri` on it in ttsync.yaml "
                "(e.g. http://127.0.0.1:8787/callback, registered with your TikTok app) and run "
                "`ttsync apply -f ttsync.yaml`",
                resolution_key="configuration_error",
            )
        self.redirect_uri: str = self.credential.redirect_uri
        self.signer = StateSigner(state_dir)
        self.state = self.signer.issue(credential_name, ttl_seconds=state_ttl)
        self.state_ttl = state_ttl

    @property
    def url(self) -> str:
        """The authorization URL to open in a browser (ref §4.1). Holds no secret."""
        query = urlencode(
            {"app_id": self.credential.app_id, "state": self.state, "redirect_uri": self.redirect_uri}
        )
        return f"{portal_auth_url(self.credential)}?{query}"

    def check_state(self, callback: Callback) -> None:
        """Refuse a callback without this flow's signed, unexpired state (does not use the state up).

        Anything on this machine can open the loopback address or hand a pasted URL over; only TikTok's
        redirect carries the state this flow signed, so only it may finish (or fail) the flow."""
        if not callback.state:
            raise CredentialFlowError(
                "the address carries no `state`, so ttsync cannot tell it answers this request: paste the "
                "whole address the browser landed on after you confirmed (it contains auth_code=... and "
                "state=...); nothing was stored",
                resolution_key="invalid_credentials",
            )
        self.signer.verify(callback.state, credential=self.credential.name, consume=False)

    def complete(self, callback: Callback) -> AuthorizeResult:
        """Verify the callback's signed state (required), exchange its code, store the token."""
        self.check_state(callback)
        if callback.error:
            raise CredentialFlowError(
                f"TikTok reported an authorization error ({callback.error}): nothing was stored",
                resolution_key="invalid_credentials",
            )
        if not callback.auth_code:
            raise CredentialFlowError(
                "no auth_code found: paste the whole address the browser landed on after you confirmed "
                "(it contains auth_code=...)",
                resolution_key="invalid_credentials",
            )
        assert callback.state is not None  # checked above
        self.signer.verify(callback.state, credential=self.credential.name)  # now used up: no replay
        return exchange_code(self.store, self.credential.name, callback.auth_code)

    def run_loopback(
        self, timeout: float, on_ignored: Callable[[str], None] | None = None
    ) -> AuthorizeResult:
        """Serve the redirect URI on 127.0.0.1 and finish the flow when TikTok redirects back.

        Requests without this flow's signed state are answered with an error page and ignored (reported
        through `on_ignored`): the flow keeps waiting for the real redirect."""
        results: list[AuthorizeResult] = []

        def handle(callback: Callback) -> str:
            result = self.complete(callback)
            results.append(result)
            return f"ttsync stored the token for credential {result.credential!r}."

        with LoopbackReceiver(self.redirect_uri, handle, check=self.check_state, on_ignored=on_ignored) as rx:
            rx.wait(timeout)
        return results[0]


def exchange_code(store: Store, credential_name: str, auth_code: str) -> AuthorizeResult:
    """`oauth2/access_token/` (ref §4.3), then store the token and the advertisers it reaches."""
    credential = repos.get_credential(store, credential_name)
    require_app_secret(credential)
    try:
        with client_for(credential, with_token=False) as client:
            token = client.get_access_token(auth_code)
            advertiser_ids = list(token.advertiser_ids)
            if not advertiser_ids:
                # ref §4.3: apps may get no advertiser_ids back (return_advertiser_ids=false); ask instead.
                with client_for(credential.model_copy(update={"access_token": token.access_token})) as probe:
                    advertiser_ids = [a.advertiser_id for a in probe.get_authorized_advertisers().advertisers]
    except TikTokError as exc:
        hint = (
            " The auth code is single-use and valid for one hour: authorize again."
            if exc.code in (40110, 40101)
            else ""
        )
        raise CredentialFlowError(
            f"TikTok refused the code exchange: {exc}.{hint}", resolution_key=exc.resolution_key
        ) from None
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=token.expires_in) if token.expires_in else None
    refresh_expires_at = (
        now + timedelta(seconds=token.refresh_token_expires_in) if token.refresh_token_expires_in else None
    )
    repos.update_credential_tokens(
        store,
        credential_name,
        access_token=token.access_token.get_secret_value(),
        # Marketing API tokens carry no refresh token (ref §4.4): clear any left from an earlier token.
        refresh_token=token.refresh_token.get_secret_value() if token.refresh_token else None,
        token_expires_at=expires_at,
        refresh_token_expires_at=refresh_expires_at if token.refresh_token else None,
        advertiser_ids=advertiser_ids,
    )
    return AuthorizeResult(
        credential=credential_name,
        advertiser_ids=advertiser_ids,
        previous_advertiser_ids=list(credential.advertiser_ids),
        token_expires_at=expires_at,
        has_refresh_token=token.refresh_token is not None,
    )


def revoke(store: Store, credential_name: str) -> list[str]:
    """`oauth2/revoke_token/` (ref §4.6), then forget the stored tokens. Returns advertisers that lost access.

    A token TikTok already considers invalid is still forgotten locally (the goal, no usable token, holds).
    """
    credential = repos.get_credential(store, credential_name)
    require_app_secret(credential)
    if credential.access_token is None:
        raise CredentialFlowError(
            f"credential {credential_name!r} holds no access token: nothing to revoke",
            resolution_key="invalid_credentials",
        )
    lost: list[str] = []
    try:
        with client_for(credential) as client:
            lost = list(client.revoke_token().advertiser_ids)
    except TikTokError as exc:
        # 40105 (invalid or already revoked) and 40102 (expired): the token is dead on TikTok's side anyway.
        # Anything else (e.g. 40101, a wrong app secret) means the token may still work: keep it.
        if exc.code not in (40102, 40105):
            raise CredentialFlowError(
                f"TikTok did not revoke the token: {exc}. The stored token was kept; try again",
                resolution_key=exc.resolution_key,
            ) from None
    repos.clear_credential_tokens(store, credential_name)
    return lost
