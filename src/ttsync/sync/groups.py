"""Stable random groups: which share of an audience a person falls in, from a keyed hash of (campaign, key).

The hash depends only on the campaign's name and the person's key, so a person stays in the same group across
runs and machines, and adding people never moves the ones already assigned. Buckets are basis points
(0-9,999); a group owns a half-open range of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

BUCKETS = 10_000
# A fixed key: the buckets must agree on every machine, and the campaign name already separates campaigns.
_KEY = b"ttsync.campaign.groups.v1"


def bucket_of(campaign: str, key: str) -> int:
    """The bucket (0-9,999) of one key in one campaign."""
    digest = hashlib.blake2b(f"{campaign}\0{key}".encode(), key=_KEY, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


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
        keys = pc.cast(batch.column(self.key_column), pa.string()).to_pylist()
        return pa.array(
            [k is not None and self.low <= bucket_of(self.campaign, k) < self.high for k in keys], pa.bool_()
        )

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(self.mask(batch))
