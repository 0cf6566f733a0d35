"""Credentials: OAuth authorization (signed single-use state, loopback receiver, paste), token refresh,
revocation, and the checks behind `ttsync credentials test`, `ttsync destinations test` and `ttsync doctor`.

    from ttsync.destinations.tiktok.oauth import ensure_fresh_token
    credential = ensure_fresh_token(store, "tiktok")   # before building a client for a run

See docs/credentials.md.
"""

from ttsync.destinations.tiktok.oauth.authorize import AuthorizeFlow, AuthorizeResult, exchange_code, revoke
from ttsync.destinations.tiktok.oauth.checks import Check, CheckReport, Doctor, probe_write_permission
from ttsync.destinations.tiktok.oauth.clients import client_for, portal_auth_url
from ttsync.destinations.tiktok.oauth.errors import CredentialFlowError, StateError
from ttsync.destinations.tiktok.oauth.receiver import Callback, LoopbackReceiver, parse_callback
from ttsync.destinations.tiktok.oauth.refresh import DEFAULT_MARGIN_SECONDS, ensure_fresh_token, needs_refresh
from ttsync.destinations.tiktok.oauth.state import StateSigner

__all__ = [
    "DEFAULT_MARGIN_SECONDS",
    "AuthorizeFlow",
    "AuthorizeResult",
    "Callback",
    "Check",
    "CheckReport",
    "CredentialFlowError",
    "Doctor",
    "LoopbackReceiver",
    "StateError",
    "StateSigner",
    "client_for",
    "ensure_fresh_token",
    "exchange_code",
    "needs_refresh",
    "parse_callback",
    "portal_auth_url",
    "probe_write_permission",
    "revoke",
]
