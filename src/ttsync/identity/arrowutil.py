"""Small Arrow helpers shared by the vectorized paths."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ARANGE: list[pa.Int64Array] = [pa.array([], pa.int64())]


def arange(n: int) -> pa.Int64Array:
    """0, 1, ..., n-1 as an int64 array (pyarrow has no arange); a zero-copy slice of a cached one."""
    cached = _ARANGE[0]
    if len(cached) < n:
        size = max(n, 2 * len(cached), 1024)
        cached = pa.array(np.arange(size, dtype=np.int64))
        _ARANGE[0] = cached
    return cached.slice(0, n)


_REPEATS: dict[str, pa.StringArray] = {}
MAX_CACHED_REPEAT = 1 << 22


def repeat(text: str, n: int) -> pa.StringArray:
    """`text` n times as a string array: a zero-copy slice of a cached one (an id schema or a column name
    on every output row of a batch would otherwise be written out again for each batch)."""
    if n > MAX_CACHED_REPEAT:
        return pa.repeat(pa.scalar(text, pa.string()), n)
    cached = _REPEATS.get(text)
    if cached is None or len(cached) < n:
        size = min(max(n, 2 * len(cached) if cached is not None else 0, 1024), MAX_CACHED_REPEAT)
        cached = _repeated(text, size)
        if len(_REPEATS) < 256:  # a handful of id schemas and column names; never grows unbounded
            _REPEATS[text] = cached
    return cached.slice(0, n)


def _repeated(text: str, n: int) -> pa.StringArray:
    """`text` n times, built from numpy and bytes: pa.repeat took ~0.1 s of the calling thread's CPU for the
    first batch's `id_schema` column (500k rows), this ~5 ms."""
    raw = text.encode()
    if len(raw) * (n + 1) >= 2**31:  # int32 offsets
        return pa.repeat(pa.scalar(text, pa.string()), n)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(raw))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def fill_false(mask: pa.BooleanArray) -> pa.BooleanArray:
    """Nulls in a mask count as False."""
    return pc.fill_null(mask, False)


@dataclass
class Outcome:
    """Results of a vectorized step, not aligned with the input: positions and values.

    ok: (position, normalized value); bad: (position, reason); fallback: positions the fast path
    could not decide, to be sent to the scalar reference. An ok piece may carry a prefix of all its
    values (a phone's `+` and country code), joined on only when the values are materialized: the
    SHA-256 kernel hashes prefix and value without the joined strings.
    """

    ok_idx: list[pa.Array] = field(default_factory=list)
    ok_val: list[pa.Array] = field(default_factory=list)
    ok_prefix: list[str] = field(default_factory=list)
    bad_idx: list[pa.Array] = field(default_factory=list)
    bad_reason: list[pa.Array] = field(default_factory=list)
    fallback: list[pa.Array] = field(default_factory=list)

    def ok(self, idx: pa.Array, values: pa.Array, prefix: str = "") -> None:
        """Record normalized values (each `prefix` + value) at positions `idx`."""
        if len(idx):
            self.ok_idx.append(idx)
            self.ok_val.append(values)
            self.ok_prefix.append(prefix)

    def bad(self, idx: pa.Array, reason: str) -> None:
        """Record rejections with one reason at positions `idx`."""
        if len(idx):
            self.bad_idx.append(idx)
            self.bad_reason.append(repeat(reason, len(idx)))

    def bad_each(self, idx: pa.Array, reasons: pa.Array) -> None:
        """Record rejections with a reason per position."""
        if len(idx):
            self.bad_idx.append(idx)
            self.bad_reason.append(reasons)

    def defer(self, idx: pa.Array) -> None:
        """Send positions `idx` to the scalar fallback."""
        if len(idx):
            self.fallback.append(idx)

    def extend(self, other: Outcome) -> None:
        """Add another outcome's pieces (positions must already refer to the same input)."""
        self.ok_idx += other.ok_idx
        self.ok_val += other.ok_val
        self.ok_prefix += other.ok_prefix
        self.bad_idx += other.bad_idx
        self.bad_reason += other.bad_reason
        self.fallback += other.fallback

    def fallback_positions(self) -> pa.Int64Array:
        """All deferred positions as one array."""
        return concat(self.fallback, pa.int64())

    def ok_pieces(self) -> list[tuple[pa.Array, pa.Array, str]]:
        """(positions, values, prefix) of each normalized piece, in order."""
        return list(zip(self.ok_idx, self.ok_val, self.ok_prefix, strict=True))

    def ok_arrays(self) -> tuple[pa.Int64Array, pa.StringArray]:
        """(positions, values) of everything normalized (prefixes joined on)."""
        values = [
            pc.binary_join_element_wise(prefix, v, "") if prefix else v
            for v, prefix in zip(self.ok_val, self.ok_prefix, strict=True)
        ]
        return concat(self.ok_idx, pa.int64()), concat(values, pa.string())

    def bad_arrays(self) -> tuple[pa.Int64Array, pa.StringArray]:
        """(positions, reasons) of everything rejected."""
        return concat(self.bad_idx, pa.int64()), concat(self.bad_reason, pa.string())


def concat(pieces: list[pa.Array], type_: pa.DataType) -> pa.Array:
    """Concatenate arrays (cast to `type_`); an empty list gives an empty array. One piece is returned
    as it is: Arrow's concatenation always copies, and a batch's 64-byte hex digests are its largest array."""
    if not pieces:
        return pa.array([], type_)
    if len(pieces) == 1 and pieces[0].type == type_:
        return pieces[0]
    return pa.concat_arrays([p.cast(type_) if p.type != type_ else p for p in pieces])
