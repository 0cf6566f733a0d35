"""Control-plane store: SQLite (or Postgres) via SQLAlchemy Core, numbered migrations, encrypted secrets."""

from ttsync.store.crypto import (
    SECRET_KEY_ENV,
    SealedSecret,
    SecretBox,
    SecretKeyError,
    load_key,
    write_key_file,
)
from ttsync.store.db import STORE_URL_ENV, Store, StoreError, sqlite_url

__all__ = [
    "SECRET_KEY_ENV",
    "STORE_URL_ENV",
    "SealedSecret",
    "SecretBox",
    "SecretKeyError",
    "Store",
    "StoreError",
    "load_key",
    "sqlite_url",
    "write_key_file",
]
