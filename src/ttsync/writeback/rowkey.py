"""`ttsync rowkey`: the row key a warehouse key value is stored as, to join write-back rows to your tables.

A row key that looks like a personal identifier (an e-mail, a phone number, a UUID-shaped id such as the
sample's `amperity_id`) is stored keyed-hashed (`hk:` + HMAC-SHA256 with the workspace's key, see
`ttsync.identity.rowkeys`), everywhere: run folders and write-back tables. Only the workspace's key can
compute it, so ttsync computes it for you; other values come back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from ttsync.identity.rowkeys import KeyHasher
from ttsync.store.db import Store


def workspace_hasher(store: Store) -> KeyHasher:
    """The workspace's row-key hasher (the same key `ttsync run` uses)."""
    return KeyHasher(store.box.derive_key(KeyHasher.PURPOSE))


def stored_row_keys(hasher: KeyHasher, values: Sequence[str | int]) -> list[str]:
    """The stored form of each key value, in order (integers are checked by value, as in a run)."""
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        original = pa.array(values, pa.int64())
        protected = hasher.protect(original.cast(pa.string()), original)
    else:
        protected = hasher.protect(pa.array([str(v) for v in values], pa.string()))
    return [str(v) for v in protected.to_pylist()]
