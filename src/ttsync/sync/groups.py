"""Stable random groups: which share of an audience a person falls in, from a keyed hash of (campaign, key).

The hash depends only on the campaign's name and the person's key, so a person stays in the same group across
runs and machines, and adding people never moves the ones already assigned. Buckets are basis points
(0-9,999); a group owns a half-open range of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    from ttsync.sync import _groups
except ImportError:  # not built (no compiler at install time): the hashlib loop gives identical buckets
    _groups = None  # type: ignore[assignment]

BUCKETS = 10_000
# A fixed key: the buckets must agree on every machine, and the campaign name already separates campaigns.
_KEY = b"ttsync.campaign.groups.v1"


def kernel_built() -> bool:
    """Whether the compiled bucket kernel was built (else buckets come from hashlib, identically)."""
    return _groups is not None


def bucket_of(campaign: str, key: str) -> int:
    """The bucket (0-9,999) of one key in one campaign."""
    digest = hashlib.blake2b(f"{campaign}\0{key}".encode(), key=_KEY, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def buckets(campaign: str, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The bucket of every key of a column (-1 where the key is null): `bucket_of`, once per row (in the
    compiled kernel when it was built: the per-key cost of a campaign's plan)."""
    strings = pc.cast(keys, pa.string())
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    prefix = f"{campaign}\0".encode()
    parts = [_chunk_buckets(prefix, chunk) for chunk in chunks]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)


def _chunk_buckets(prefix: bytes, values: pa.Array) -> np.ndarray:
    if _groups is None or len(values) == 0:
        return _python_buckets(prefix, values)
    _, offsets, data = values.buffers()
    raw = _groups.buckets(
        offsets, data if data is not None else b"", values.offset, len(values), _KEY, prefix, BUCKETS
    )
    out = np.frombuffer(raw, dtype=np.int32).copy()
    if values.null_count:  # a null slot may span any bytes: its computed bucket is discarded
        out[np.asarray(values.is_null())] = -1
    return out


def _python_buckets(prefix: bytes, values: pa.Array) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int32)
    for i, key in enumerate(values.to_pylist()):
        if key is None:
            out[i] = -1
            continue
        digest = hashlib.blake2b(prefix + key.encode(), key=_KEY, digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") % BUCKETS
    return out


def in_range(bucket: np.ndarray, low: int, high: int) -> pa.Array:
    """True where a bucket lies in [low, high) (never for a null key's -1)."""
    return pa.array((bucket >= max(low, 0)) & (bucket < high), pa.bool_())


@dataclass(frozen=True)
class BucketFilter:
    """Keep the rows of a batch whose key's bucket lies in [low, high); rows without a key are dropped
    (they cannot be assigned stably, and the identity rules would reject them anyway)."""

    campaign: str
    key_column: str
    low: int
    high: int

    def mask(self, batch: pa.RecordBatch) -> pa.Array:
        """True for the rows in this group."""
        return in_range(buckets(self.campaign, batch.column(self.key_column)), self.low, self.high)

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(self.mask(batch))
