"""Campaign group buckets: the compiled kernel (ttsync.sync._groups) gives exactly `bucket_of` (hashlib's keyed
BLAKE2b) for every key, whatever its length (block boundaries), encoding, type or array layout; so does the
hashlib fallback used when the kernel is not built."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from ttsync.sync import groups
from ttsync.sync.groups import BucketFilter, bucket_of, buckets, kernel_built

# Lengths around BLAKE2b's 128-byte block, with the prefix "spring\0" (7 bytes) in front of each key.
KEYS = [
    "",
    "a",
    "c1",
    "user@example.com",
    "ünïcødé-κλειδί-键",
    *("x" * n for n in (119, 120, 121, 127, 128, 129, 248, 249, 250, 400)),
    *(f"c{i}" for i in range(2000)),
]


def _expected(campaign: str, keys: Sequence[str | None]) -> list[int]:
    return [-1 if k is None else bucket_of(campaign, k) for k in keys]


@pytest.fixture(params=["kernel", "hashlib"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "kernel":
        if not kernel_built():
            pytest.skip("the compiled group kernel was not built")
    else:
        monkeypatch.setattr(groups, "_groups", None)  # the fallback path, as on a machine without a compiler
    return str(request.param)


def test_buckets_equal_bucket_of_for_every_key(implementation: str) -> None:
    for campaign in ("spring", "a" * 70, "naïve"):
        assert buckets(campaign, pa.array(KEYS)).tolist() == _expected(campaign, KEYS)


def test_nulls_slices_chunks_and_other_types(implementation: str) -> None:
    with_nulls = ["c1", None, "c2", None, "x" * 200]
    assert buckets("spring", pa.array(with_nulls)).tolist() == _expected("spring", with_nulls)
    # A null slot may span bytes (Arrow allows it): still -1.
    offsets = pa.py_buffer(np.array([0, 2, 5, 7], dtype=np.int32).tobytes())
    validity = pa.py_buffer(bytes([0b101]))
    spanning = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(b"c1XXXc3"), validity, 1)
    assert buckets("spring", spanning).tolist() == _expected("spring", ["c1", None, "c3"])
    sliced = pa.array(KEYS).slice(3, 40)  # an array whose offsets do not start at 0
    assert buckets("spring", sliced).tolist() == _expected("spring", KEYS[3:43])
    chunked = pa.chunked_array([pa.array(KEYS[:10]), pa.array([], pa.string()), pa.array(KEYS[10:30])])
    assert buckets("spring", chunked).tolist() == _expected("spring", KEYS[:30])
    assert buckets("spring", pa.array(KEYS[:50], pa.large_string())).tolist() == _expected(
        "spring", KEYS[:50]
    )
    integers = pa.array([0, 7, -3, 10**15, None], pa.int64())  # integer keys hash their decimal text
    assert buckets("spring", integers).tolist() == _expected("spring", ["0", "7", "-3", str(10**15), None])
    assert buckets("spring", pa.chunked_array([], pa.string())).tolist() == []


def test_buckets_are_uniform_enough_for_percent_groups() -> None:
    got = buckets("spring", pa.array([f"c{i}" for i in range(100_000)]))
    assert got.min() >= 0
    assert got.max() < groups.BUCKETS
    share = np.count_nonzero(got < 1000) / len(got)  # a 10% holdout
    assert abs(share - 0.10) < 0.005


def test_bucket_filter_keeps_its_range_and_drops_null_keys() -> None:
    batch = pa.record_batch({"id": pa.array(["c1", None, *KEYS[5:500]]), "n": pa.array(range(497))})
    kept = BucketFilter("spring", "id", 2000, 5000)(batch)
    want = [
        k for k in batch.column("id").to_pylist() if k is not None and 2000 <= bucket_of("spring", k) < 5000
    ]
    assert kept.column("id").to_pylist() == want
