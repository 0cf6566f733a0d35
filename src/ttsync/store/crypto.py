"""Fernet encryption of secrets at rest, and the workspace key that drives it.

The key comes from `$TTSYNC_SECRET_KEY` or from a 0600 key file in the workspace's state folder.
Secrets read back from the store are `SealedSecret`s: they decrypt only when `get_secret_value()` is called.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

SECRET_KEY_ENV = "TTSYNC_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)
KEY_FILE_NAME = "secret.key"


class SecretKeyError(Exception):
    """The encryption key is missing, unreadable, too open, or does not decrypt the stored secrets."""


class SecretBox:
    """Encrypts and decrypts secret strings with one Fernet key. Its repr never shows the key."""

    __slots__ = ("_fernet", "_key")

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
            self._key = base64.urlsafe_b64decode(key)
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                "the secret key is not a Fernet key (32 url-safe base64 bytes); "
                "create one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from exc

    def __repr__(self) -> str:
        return "SecretBox(key=<redacted>)"

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for one `purpose` (e.g. keyed hashes of row keys), derived from the workspace key with
        HMAC-SHA256: stable for the workspace, independent of the encryption key's other uses."""
        return hmac.new(self._key, f"ttsync:{purpose}".encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> str:
        """Encrypt `plaintext` to a Fernet token (ASCII)."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a Fernet token produced by `encrypt`."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret does not decrypt with this key: use the workspace's original key file or "
                f"{SECRET_KEY_ENV}, or re-enter the credential's secrets"
            ) from None

    def seal(self, token: str) -> SealedSecret:
        """Wrap a stored token as a secret that decrypts on demand."""
        return SealedSecret(token, self)


class SealedSecret(SecretStr):
    """A `SecretStr` holding ciphertext; decrypts on `get_secret_value()`. Repr and dumps are redacted."""

    def __init__(self, token: str, box: SecretBox) -> None:
        # SecretStr keeps its value in `_secret_value`; we keep the ciphertext there instead.
        self._secret_value = ""
        self._token = token
        self._box = box

    def get_secret_value(self) -> str:
        """Decrypt and return the secret."""
        return self._box.decrypt(self._token)

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    def __len__(self) -> int:
        return 10

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and self.get_secret_value() == other.get_secret_value()

    def __hash__(self) -> int:
        return hash(self._token)


def generate_key() -> str:
    """A new random Fernet key."""
    return Fernet.generate_key().decode("ascii")


def write_key_file(path: Path) -> None:
    """Create a new key file readable by the owner only (0600). Refuses to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    os.chmod(path, 0o600)  # umask cannot widen, but make the mode explicit on odd filesystems


def load_key(key_file: Path | None) -> SecretBox:
    """The workspace key: `$TTSYNC_SECRET_KEY` if set, else the key file (which must be 0600)."""
    from_env = os.environ.get(SECRET_KEY_ENV)
    if from_env:
        return SecretBox(from_env.strip())
    if key_file is None or not key_file.exists():
        raise SecretKeyError(
            f"no secret key: set {SECRET_KEY_ENV} or create the workspace with `ttsync init` "
            f"(which writes {KEY_FILE_NAME} in the state folder)"
        )
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"key file {key_file} is readable by others (mode {mode:o}): run `chmod 600 {key_file}`"
        )
    return SecretBox(key_file.read_text().strip())
