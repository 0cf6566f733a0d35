"""Identifiers that look like TikTok's: 19-digit decimal strings, hex tokens, request ids.

IDs are derived from (seed, counter) with SHA-256, so the demo seed always produces the same IDs for its own
objects, and a restarted emulator with ``--state`` (which persists seed and counter) continues the same
sequence. Without a state file, ids made after seeding use a random salt in the seed (see
``seed.build_state``), so a restart never repeats them unless deterministic ids were asked for.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime


class IdGenerator:
    """Deterministic generator of realistic IDs and secrets."""

    def __init__(self, seed: str, counter: int = 0) -> None:
        self.seed = seed
        self.counter = counter

    def _next_digest(self, kind: str) -> bytes:
        self.counter += 1
        return hashlib.sha256(f"{self.seed}:{kind}:{self.counter}".encode()).digest()

    def numeric(self) -> str:
        """A 19-digit ID string starting with 7, like TikTok's advertiser and audience IDs."""
        value = int.from_bytes(self._next_digest("id")[:8], "big") % 10**18
        return str(7 * 10**18 + value)

    def hex_token(self, nbytes: int = 20) -> str:
        """A lowercase hex secret (access tokens are 40 hex characters)."""
        digest = self._next_digest("token")
        while len(digest) < nbytes:
            digest += hashlib.sha256(digest).digest()
        return digest[:nbytes].hex()


def request_id(now: float) -> str:
    """TikTok's request_id: UTC ``YYYYMMDDhhmmss`` then uppercase hex (ref §1, §8.1)."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%d%H%M%S")
    return stamp + secrets.token_hex(10).upper()
