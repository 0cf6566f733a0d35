"""Hashed identifiers as four 64-bit integers, the form audience files keep them in.

A SHA-256 digest is 32 bytes: `k1..k4` hold them big-endian, 8 bytes each; an MD5 digest (16 bytes) fills
`k1`, `k2` and leaves `k3`, `k4` null. Diffs join on all four words, so they are exact for any input (even
made-up pre-hashed values); fixed-width integers hash and compare several times faster in DuckDB than
64-character hex strings, and Parquet stores them in half the space. The hex TikTok wants is rebuilt by
`HEX_SQL` for the rows that are sent.
"""

from __future__ import annotations

import binascii

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_COLUMNS = ("k1", "k2", "k3", "k4")
DIGEST_FIELDS = [pa.field(name, pa.uint64()) for name in KEY_COLUMNS]

# Lowercase hex of the digest held in k1..k4 (an MD5 digest has null k3/k4, and printf of a null is null).
HEX_SQL = "printf('%016x%016x', k1, k2) || coalesce(printf('%016x%016x', k3, k4), '')"

_WORDS_BY_HEX_WIDTH = {32: 2, 64: 4}  # MD5 and SHA-256 hex digests


def digest_keys(hashes: pa.Array) -> list[pa.Array]:
    """k1..k4 (uint64) of lowercase hex digests of 32 or 64 characters; null hashes give null keys."""
    n = len(hashes)
    if not pa.types.is_string(hashes.type):
        hashes = pc.cast(hashes, pa.string())
    if n and not hashes.null_count and _all_width(hashes, 64):
        # The common case (SHA-256 only): no masks, four contiguous columns.
        columns = np.ascontiguousarray(_decode(hashes, 64).T)
        return [pa.array(column) for column in columns]
    words = np.zeros((n, 4), dtype=np.uint64)
    has_words = np.zeros((n, 4), dtype=bool)
    lengths = pc.fill_null(pc.binary_length(hashes), 0)
    for width, count in _WORDS_BY_HEX_WIDTH.items():
        mask = pc.equal(lengths, width)
        if not pc.any(mask).as_py():
            continue
        rows = pc.indices_nonzero(mask).to_numpy()
        part = hashes if len(rows) == n else pc.take(hashes, pa.array(rows))
        words[rows, :count] = _decode(part, width)
        has_words[rows, :count] = True
    known = int(pc.sum(pc.is_in(lengths, pa.array([0, *_WORDS_BY_HEX_WIDTH]))).as_py() or 0)
    if known != n:
        raise ValueError("a hashed identifier is neither an MD5 nor a SHA-256 hex digest")
    return [pa.array(words[:, i], mask=~has_words[:, i]) for i in range(4)]


def _all_width(hashes: pa.Array, width: int) -> bool:
    """Whether every value of a null-free string array is `width` characters long."""
    offsets = np.frombuffer(
        hashes.buffers()[1], dtype=np.int32, count=len(hashes) + 1, offset=hashes.offset * 4
    )
    return bool(offsets[-1] - offsets[0] == width * len(hashes) and (np.diff(offsets) == width).all())


def _decode(hashes: pa.Array, width: int) -> np.ndarray:
    """Big-endian 64-bit words of hex strings that are all `width` characters long (no nulls)."""
    offsets_buf, data_buf = hashes.buffers()[1], hashes.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(hashes) + 1, offset=hashes.offset * 4)
    start, end = int(offsets[0]), int(offsets[-1])
    # All values have the same width, so the characters sit back to back: decode them in one call.
    assert data_buf is not None
    assert end - start == width * len(hashes)
    try:
        raw = binascii.unhexlify(memoryview(data_buf)[start:end])
    except binascii.Error:
        raise ValueError("a hashed identifier is not a hex digest") from None
    return np.frombuffer(raw, dtype=">u8").reshape(len(hashes), width // 16).astype(np.uint64)


def duplicate_keys(hashes: pa.Array) -> pa.Array:
    """The first 8 bytes of each hex digest read as a little-endian uint64: the key the compiled SHA-256
    kernel gives the duplicate counter, so every path counts the same digest as the same identifier."""
    first = digest_keys(hashes)[0]
    words = pc.fill_null(first, 0).to_numpy().byteswap()
    return pa.array(
        words, mask=pc.is_null(first).to_numpy(zero_copy_only=False) if first.null_count else None
    )
