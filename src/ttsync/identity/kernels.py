"""Whole-array kernels (SHA-256 hex, digit extraction, the email fast check, and the email fast path and
SHA-256 fused into one pass): compiled when built.

The compiled module (_kernels.c: OpenSSL's SHA-256, byte loops for the rest; GIL released) is optional
at build time. Each function here returns None when it cannot take the array (module not built,
nulls, another string type, too many rows) and the caller then uses DuckDB or Arrow kernels with
identical results, so output never depends on whether the module was built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    from ttsync.identity import _kernels
except ImportError:  # not built (no compiler or OpenSSL headers at install time)
    _kernels = None  # type: ignore[assignment]

# The kernels write int32 offsets: 64 hex characters per value must fit.
MAX_KERNEL_ROWS = (2**31 - 1) // 64 - 1


def kernel_available() -> bool:
    """Whether the compiled kernels were built and imported."""
    return _kernels is not None


def _buffers(values: pa.Array) -> tuple[pa.Buffer, pa.Buffer | bytes] | None:
    """(offsets, data) of a null-free string array the kernels can take, else None."""
    if _kernels is None or values.type != pa.string() or values.null_count or len(values) > MAX_KERNEL_ROWS:
        return None
    _, offsets, data = values.buffers()
    return offsets, data if data is not None else b""


def sha256_hex(values: pa.Array) -> tuple[pa.StringArray, pa.UInt64Array] | None:
    """(lowercase hex SHA-256 of each string's UTF-8 bytes, 64-bit duplicate key of each: the first
    8 digest bytes), or None: then use DuckDB."""
    buffers = _buffers(values)
    if buffers is None or _kernels is None:
        return None
    n = len(values)
    hex_digests, hex_offsets, keys = _kernels.sha256_hex(*buffers, values.offset, n)
    hashes = pa.StringArray.from_buffers(n, pa.py_buffer(hex_offsets), pa.py_buffer(hex_digests))
    dup_keys = pa.Array.from_buffers(pa.uint64(), n, [None, pa.py_buffer(keys)])
    return hashes, dup_keys


_HEX_OFFSETS: list[pa.Buffer] = [pa.array([0], pa.int32()).buffers()[1]]


def _hex_offsets(n: int) -> pa.Buffer:
    """int32 offsets 0, 64, ..., 64 * n (at least): every digest array shares one cached buffer."""
    cached = _HEX_OFFSETS[0]
    if cached.size // 4 < n + 1:
        size = max(n + 1, min(2 * (cached.size // 4), MAX_KERNEL_ROWS + 1), 1024)  # 64 * size fits int32
        cached = pa.py_buffer(np.arange(0, 64 * size, 64, dtype=np.int32))
        _HEX_OFFSETS[0] = cached
    return cached


class DigestWriter:
    """SHA-256 hex digests and duplicate keys (as sha256_hex gives them) of several pieces written into
    one pair of buffers, in the order they are added: no intermediate joined or concatenated strings.
    `create` gives None when the kernels are not built; then hash with sha256_hex or DuckDB."""

    def __init__(self, capacity: int, *, within: DigestWriter | None = None, start: int = 0) -> None:
        assert _kernels is not None
        self.capacity = capacity
        if within is None:
            self._hex = pa.allocate_buffer(64 * capacity)
            self._keys = pa.allocate_buffer(8 * capacity)
        else:  # a region of another writer's buffers (see `region`)
            self._hex, self._keys = within._hex, within._keys
        self.start = start  # digest position of this writer's first digest in the buffers
        self._region = within is not None
        self.count = 0

    @classmethod
    def create(cls, capacity: int) -> DigestWriter | None:
        """A writer for at most `capacity` digests, or None without the kernels (or an older build)."""
        if _kernels is None or not hasattr(_kernels, "email_sha256_into") or capacity > MAX_KERNEL_ROWS:
            return None
        return cls(capacity)

    def add(self, values: pa.Array, prefix: str = "") -> bool:
        """Append SHA-256(prefix + value) of each value; False (nothing written) if the kernel cannot
        take the array (nulls, another string type, more than the capacity left)."""
        if len(values) == 0:
            return True
        buffers = _buffers(values)
        if buffers is None or _kernels is None or self.count + len(values) > self.capacity:
            return False
        _kernels.sha256_hex_into(
            *buffers,
            values.offset,
            len(values),
            prefix.encode(),
            self._hex,
            self._keys,
            self.start + self.count,
        )
        self.count += len(values)
        return True

    def add_fast_emails(
        self, values: pa.Array, max_length: int, refused_tlds: Sequence[str]
    ) -> pa.BooleanArray | None:
        """The email fast path in one pass (see _kernels.c email_sha256_into): for each raw value, whether
        it passed kinds.EMAIL_FAST_RE once trimmed and lowercased (then its SHA-256 was appended, in row
        order), or None if the kernel cannot take the array (nothing appended)."""
        buffers = _buffers(values)
        if buffers is None or _kernels is None or self.count + len(values) > self.capacity:
            return None
        if not all(t.isascii() and t.isalpha() and t.islower() for t in refused_tlds):
            return None  # the kernel compares single-label TLDs only
        refused = ("." + ".".join(refused_tlds) + ".").encode("ascii")
        flags, count = _kernels.email_sha256_into(
            *buffers,
            values.offset,
            len(values),
            max_length,
            refused,
            self._hex,
            self._keys,
            self.start + self.count,
        )
        self.count += count
        as_bytes = pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(flags)])
        return pc.cast(as_bytes, pa.bool_())

    def region(self, start: int, capacity: int) -> DigestWriter:
        """A writer of at most `capacity` digests into this writer's buffers, from digest position `start`.

        The preparer gives each worker thread its own region of one batch-wide pair of buffers, so the
        workers write (and first touch) the batch's digests in parallel; `join` then closes the gaps
        between the regions, where a copy into a new array would cost the main thread alone."""
        if start < 0 or capacity < 0 or start + capacity > self.capacity:
            raise ValueError("the region does not fit in the writer")
        return DigestWriter(capacity, within=self, start=start)

    def join(self, regions: Sequence[DigestWriter]) -> tuple[pa.StringArray, pa.UInt64Array]:
        """(hex digests, duplicate keys) of `regions` (made by `region`, in increasing `start`), back to
        back in that order: each region's digests are moved down to the end of the previous ones (a
        memmove within pages the workers already touched)."""
        hex_view, keys_view = memoryview(self._hex), memoryview(self._keys)
        n = 0
        for part in regions:
            if part._hex is not self._hex or part.start < n:
                raise ValueError("the regions are not this writer's, in order")
            if part.start != n and part.count:
                # memoryview slice assignment is a memmove: the ranges may overlap.
                src, count = part.start, part.count
                hex_view[64 * n : 64 * (n + count)] = hex_view[64 * src : 64 * (src + count)]
                keys_view[8 * n : 8 * (n + count)] = keys_view[8 * src : 8 * (src + count)]
            n += part.count
        self.count = n
        return self.finish()

    def finish(self) -> tuple[pa.StringArray, pa.UInt64Array]:
        """(hex digests, duplicate keys) of everything added, in order (of a region: views of the shared
        buffers, valid until `join` moves them)."""
        n = self.count
        hex_buffer, keys_buffer = self._hex, self._keys
        if self._region:
            hex_buffer = hex_buffer.slice(64 * self.start, 64 * n)
            keys_buffer = keys_buffer.slice(8 * self.start, 8 * n)
        elif n < self.capacity // 2:
            # Mostly invalid values: copy the few digests out rather than keep the whole buffer alive.
            hex_buffer = pa.py_buffer(memoryview(hex_buffer)[: 64 * n].tobytes())
            keys_buffer = pa.py_buffer(memoryview(keys_buffer)[: 8 * n].tobytes())
        hashes = pa.StringArray.from_buffers(n, _hex_offsets(n), hex_buffer)
        keys = pa.Array.from_buffers(pa.uint64(), n, [None, keys_buffer])
        return hashes, keys


def hmac_sha256_hex(values: pa.Array, key: bytes, prefix: str, hex_chars: int) -> pa.StringArray | None:
    """`prefix` + the first `hex_chars` hex characters of HMAC-SHA256(key, value) for each string (key at
    most 64 bytes), or None: then use DuckDB."""
    buffers = _buffers(values)
    # A module built from an older _kernels.c (an editable install not rebuilt) lacks the HMAC kernel.
    if buffers is None or _kernels is None or len(key) > 64 or not hasattr(_kernels, "hmac_sha256_hex"):
        return None
    n = len(values)
    out, out_offsets = _kernels.hmac_sha256_hex(*buffers, values.offset, n, key, prefix.encode(), hex_chars)
    return pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out))


def phone_scan(values: pa.Array) -> tuple[pa.StringArray, pa.BooleanArray, pa.BooleanArray] | None:
    """(the ASCII digits 0-9 of each string, whether it matches phone_fast.SHAPE_RE, whether it
    contains a `+`), or None: then use RE2 and Arrow."""
    buffers = _buffers(values)
    if buffers is None or _kernels is None:
        return None
    n = len(values)
    digits, offsets, flags = _kernels.phone_scan(*buffers, values.offset, n)
    as_bytes = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(flags)])
    shape = pc.not_equal(pc.bit_wise_and(as_bytes, pa.scalar(1, pa.uint8())), pa.scalar(0, pa.uint8()))
    plus = pc.not_equal(pc.bit_wise_and(as_bytes, pa.scalar(2, pa.uint8())), pa.scalar(0, pa.uint8()))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits)), shape, plus


def email_fast(values: pa.Array, max_length: int, refused_tlds: Sequence[str]) -> pa.BooleanArray | None:
    """Whether each string matches kinds.EMAIL_FAST_RE, has at most `max_length` bytes and a TLD not
    in `refused_tlds` (lowercase letters only), or None: then use RE2 and ends_with."""
    buffers = _buffers(values)
    if buffers is None or _kernels is None:
        return None
    if not all(t.isascii() and t.isalpha() and t.islower() for t in refused_tlds):
        return None  # the kernel compares single-label TLDs only
    refused = ("." + ".".join(refused_tlds) + ".").encode("ascii")
    flags = _kernels.email_fast(*buffers, values.offset, len(values), max_length, refused)
    as_bytes = pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(flags)])
    return pc.cast(as_bytes, pa.bool_())


# --- phone section (see _kernels.c's phone section) ---


def phone_kernel_available() -> bool:
    """Whether the compiled phone kernel (phone_e164) was built."""
    return _kernels is not None and hasattr(_kernels, "phone_e164")


def phone_e164(
    values: pa.Array, home: bytes | None, codes: tuple[bytes | None, ...], params: bytes
) -> tuple[np.ndarray, pa.StringArray, bytes] | None:
    """(status per value, the valid numbers as country code + national number in row order, the
    country codes whose tables were missing: 1000 bytes) from the compiled kernel, or None: then use
    the RE2 path. Status codes and tables: _kernels.c's phone_e164 and phone_rules."""
    buffers = _buffers(values)
    if buffers is None or _kernels is None or not hasattr(_kernels, "phone_e164"):
        return None
    status, out, out_offsets, count, need = _kernels.phone_e164(
        *buffers, values.offset, len(values), home, codes, params
    )
    numbers = pa.StringArray.from_buffers(count, pa.py_buffer(out_offsets), pa.py_buffer(out))
    return np.frombuffer(status, dtype=np.uint8), numbers, need
