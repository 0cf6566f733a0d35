"""The OAuth `state` parameter: signed, expiring, single-use, bound to one credential (ref §4.1, §4.2).

A state is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`, where the payload is compact JSON
`{"v": 1, "c": credential name, "n": random nonce, "e": expiry (unix seconds)}`. The HMAC key is a random
per-workspace secret kept in `state/oauth-state.key` (mode 0600, created on first use), so only this
workspace can mint states it will accept. A verified state is *consumed*: its nonce is recorded by creating
`state/oauth-nonces/<nonce>` with O_EXCL, which is atomic even across processes, so a replayed redirect is
refused. Nonce files older than the longest state lifetime are swept on the next issue.

Why this matters: the state is what ties the redirect that reaches the loopback receiver to the flow this
user started. Without it, anyone able to make the browser hit the redirect URI could plant their own auth
code, and ttsync would store a token for *their* TikTok account (login CSRF).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ttsync.destinations.tiktok.oauth.errors import StateError

KEY_FILE: Final = "oauth-state.key"
NONCE_DIR: Final = "oauth-nonces"
DEFAULT_STATE_TTL: Final = 600.0  # seconds a person has to finish the consent page
MAX_STATE_TTL: Final = 3600.0  # ref §4.2: the auth code itself lives 1 hour; no state needs to outlive it
_NONCE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class StateClaims:
    """What a verified state says."""

    credential: str
    nonce: str
    expires_at: float


class StateSigner:
    """Issues and verifies OAuth states for one workspace state folder."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._key = _load_or_create_key(state_dir / KEY_FILE)

    def __repr__(self) -> str:
        return f"StateSigner({str(self._dir)!r}, key=<redacted>)"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(
        self, credential: str, *, ttl_seconds: float = DEFAULT_STATE_TTL, now: float | None = None
    ) -> str:
        """A new state for `credential`, valid `ttl_seconds` (at most one hour)."""
        if not 0 < ttl_seconds <= MAX_STATE_TTL:
            raise ValueError(f"state lifetime must be between 0 and {MAX_STATE_TTL:.0f} seconds")
        issued = time.time() if now is None else now
        self._sweep(issued)
        claims = {"v": 1, "c": credential, "n": secrets.token_urlsafe(24), "e": int(issued + ttl_seconds)}
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(
        self, state: str, *, credential: str, consume: bool = True, now: float | None = None
    ) -> StateClaims:
        """Check signature, credential and expiry; with `consume`, mark it used (a second use is refused).

        Raises `StateError` whose message explains what to do; it never echoes the state itself.
        """
        claims = self._decode(state)
        if claims.credential != credential:
            raise StateError(
                f"the authorization answer was started for credential {claims.credential!r}, not "
                f"{credential!r}: run `ttsync credentials authorize {credential}` again",
                reason="wrong_credential",
            )
        current = time.time() if now is None else now
        if current >= claims.expires_at:
            raise StateError(
                "the authorization request expired before TikTok redirected back: run "
                f"`ttsync credentials authorize {credential}` again and confirm within the time shown",
                reason="expired",
            )
        if consume:
            self._consume(claims.nonce)
        return claims

    def _decode(self, state: str) -> StateClaims:
        malformed = StateError(
            "the `state` in the redirect is not one ttsync issued (malformed); start again with "
            "`ttsync credentials authorize NAME`",
            reason="malformed",
        )
        parts = state.split(".")
        if len(parts) != 2 or not all(parts):
            raise malformed
        try:
            payload, mac = _unb64(parts[0]), _unb64(parts[1])
        except (binascii.Error, ValueError):
            raise malformed from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise StateError(
                "the `state` in the redirect has a bad signature: it was altered or issued by another "
                "workspace. Nothing was stored; start again with `ttsync credentials authorize NAME`",
                reason="bad_signature",
            )
        try:
            data = json.loads(payload)
            claims = StateClaims(credential=str(data["c"]), nonce=str(data["n"]), expires_at=float(data["e"]))
        except (ValueError, KeyError, TypeError):
            raise malformed from None
        if data.get("v") != 1 or not _NONCE_RE.match(claims.nonce):
            raise malformed
        return claims

    def _consume(self, nonce: str) -> None:
        folder = self._dir / NONCE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: exactly one caller (in any process) can create the marker, so exactly one use wins.
            fd = os.open(folder / nonce, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise StateError(
                "this authorization answer was already used (a replayed redirect); nothing was stored. "
                "Start again with `ttsync credentials authorize NAME`",
                reason="replayed",
            ) from None
        os.close(fd)

    def _sweep(self, now: float) -> None:
        # A nonce only needs remembering while its state could still verify; older markers are dead weight.
        folder = self._dir / NONCE_DIR
        if not folder.is_dir():
            return
        for marker in folder.iterdir():
            try:
                if marker.stat().st_mtime < now - MAX_STATE_TTL - 60:
                    marker.unlink()
            except FileNotFoundError:
                continue


def _load_or_create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(data)
        except ValueError:
            key = b""
        if len(key) < 32:
            raise StateError(
                f"{path} is damaged: delete it (ttsync creates a new one) and authorize again",
                reason="malformed",
            ) from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    return key
