"""What the admin route modules share: the emulator's state, the request body, lookups that answer 400, and
views of secrets (redacted)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ttsync.emulator.model import State, Token

if TYPE_CHECKING:
    from ttsync.emulator.app import Emulator


class AdminError(Exception):
    """A bad admin request (HTTP 400 with a JSON error)."""


@dataclass(frozen=True)
class AdminContext:
    """One emulator as its admin routes see it."""

    emu: Emulator

    def state(self) -> State:
        """The current state (replaced on reset)."""
        return self.emu.state_ref.state

    async def body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object ({} when empty)."""
        raw = await request.body()
        if not raw.strip():
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise AdminError("body must be a JSON object")
        return value

    def audience_or_404(self, audience_id: str) -> Any:
        """The audience, or an `AdminError` naming it."""
        aud = self.state().audiences.get(audience_id)
        if aud is None:
            raise AdminError(f"no audience {audience_id}")
        return aud

    def advertiser_or_404(self, advertiser_id: str) -> Any:
        """The advertiser, or an `AdminError` naming it."""
        adv = self.state().advertisers.get(advertiser_id)
        if adv is None:
            raise AdminError(f"no advertiser {advertiser_id}")
        return adv


def redact(secret: str | None) -> str | None:
    """Show only the first 4 characters of a secret."""
    return None if secret is None else secret[:4] + "…"


def token_view(t: Token) -> dict[str, Any]:
    """A token with its secret parts redacted."""
    return {
        "token": redact(t.token),
        "app_id": t.app_id,
        "user_id": t.user_id,
        "advertiser_ids": t.advertiser_ids,
        "expires_at": t.expires_at,
        "revoked": t.revoked,
        "has_refresh_token": t.refresh_token is not None,
    }


def members_hex(aud_members: Mapping[str, Iterable[bytes]]) -> dict[str, list[str]]:
    """Member hashes per schema as sorted lowercase hex."""
    return {schema: sorted(h.hex() for h in hashes) for schema, hashes in aud_members.items()}
