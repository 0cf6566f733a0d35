"""A fast reader for `segment/mapping/` bodies in the compact layout bulk senders write (ref §2.1).

A 10,000-row mapping request is ~1 MB of JSON; parsing it into 10,000 lists, dicts and strings and checking
each in Python costs far more than the membership update itself. Bulk senders (ttsync's upload, built from
Arrow) write every row alike: `[{"id":"<hex>","audience_ids":["<id>",...]},...]`, the same entries, the same
audience ids and the same hash lengths in every row, no whitespace. Such rows have one fixed width, so the
whole `batch_data` array is a grid of bytes that NumPy checks at once: every byte outside the hashes equal to
the first row's, every hash byte lowercase hex.

Anything else (whitespace, `{}` placeholders, rows that differ in shape, escapes, another key order) is left
to the generic parser (`parse_mapping_body` returns None) and to the handler's row-by-row checks, which name
the exact row and field of an error. The fast path only ever accepts bodies the generic path accepts, with
the same result: the handler still makes every check it does not already hold for `PackedRows` (the hash
length of each id_schema, the audiences).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

_KEY: Final = b'"batch_data"'
_VALUE_START: Final = re.compile(rb'"batch_data"[ \t\n\r]*:[ \t\n\r]*\[')
# One entry of the compact layout; JSON strings without escapes or control characters.
_ENTRY: Final = re.compile(
    rb'\{"id":"([0-9a-f]+)","audience_ids":\[("[^"\\\x00-\x1f]*"(?:,"[^"\\\x00-\x1f]*")*)\]\}'
)
_STRING: Final = re.compile(rb'"([^"\\\x00-\x1f]*)"')
_MAX_ENTRIES: Final = 16  # more than any id_schema has (6 types): longer rows go the generic way
_COMMA: Final = ord(",")
_CLOSE: Final = ord("]")


@dataclass(frozen=True)
class PackedRows:
    """`batch_data` of the compact layout, checked for shape: `count` rows of one entry per column, each
    `{"id": <lowercase hex of hash_lengths[c]>, "audience_ids": audience_ids[c]}`; `digests[c]` holds the
    decoded hashes of column c, row after row."""

    count: int
    hash_lengths: tuple[int, ...]
    audience_ids: tuple[tuple[str, ...], ...]
    digests: tuple[bytes, ...]

    def __len__(self) -> int:
        return self.count

    def column(self, c: int) -> list[bytes]:
        """The hashes of column `c` as bytes, one per row."""
        size = self.hash_lengths[c] // 2
        data = self.digests[c]
        return [data[i : i + size] for i in range(0, len(data), size)]


def parse_mapping_body(raw: bytes) -> dict[str, Any] | None:
    """The params of a mapping body with `batch_data` as `PackedRows`, or None when the body is not in the
    compact layout (the generic parser then reads it)."""
    key = raw.find(_KEY)
    if key < 0 or raw.find(_KEY, key + 1) >= 0:
        return None
    head = _VALUE_START.match(raw, key)
    if head is None:
        return None
    array_start = head.end() - 1
    first = _first_row(raw, array_start + 1)
    if first is None:
        return None
    row_end, spans = first
    rows = _grid(raw, array_start + 1, row_end, spans)
    if rows is None:
        return None
    count, array_end, digests = rows
    params = _rest(raw[:array_start], raw[array_end + 1 :])
    if params is None:
        return None
    try:
        audience_ids = tuple(
            tuple(part.decode() for part in _STRING.findall(raw, a, b)) for _, _, a, b in spans
        )
    except UnicodeDecodeError:
        return None
    params["batch_data"] = PackedRows(
        count=count,
        hash_lengths=tuple(h1 - h0 for h0, h1, _, _ in spans),
        audience_ids=audience_ids,
        digests=digests,
    )
    return params


def _first_row(raw: bytes, start: int) -> tuple[int, list[tuple[int, int, int, int]]] | None:
    """(index after the first row, [(hash start, hash end, audience ids start, end) per entry])."""
    if raw[start : start + 1] != b"[":
        return None
    pos = start + 1
    spans: list[tuple[int, int, int, int]] = []
    while len(spans) < _MAX_ENTRIES:
        entry = _ENTRY.match(raw, pos)
        if entry is None or entry.end(1) - entry.start(1) not in (32, 64):
            return None
        spans.append((entry.start(1), entry.end(1), entry.start(2), entry.end(2)))
        pos = entry.end()
        following = raw[pos : pos + 1]
        if following == b"]":
            return pos + 1, spans
        if following != b",":
            return None
        pos += 1
    return None


def _grid(
    raw: bytes, start: int, row_end: int, spans: list[tuple[int, int, int, int]]
) -> tuple[int, int, tuple[bytes, ...]] | None:
    """(rows, index of the array's closing bracket, decoded hashes per column) when every row is the first
    row's bytes outside its hashes and every hash is lowercase hex; else None."""
    width = row_end - start  # one row, without the comma after it
    data = np.frombuffer(raw, np.uint8)
    separators = data[row_end :: width + 1]
    stops = np.flatnonzero(separators != _COMMA)
    if len(stops) == 0 or separators[stops[0]] != _CLOSE:
        return None
    count = int(stops[0]) + 1
    grid = data[start : start + count * (width + 1)].reshape(count, width + 1)
    template = grid[0]
    fixed = 0
    for h0, h1, _, _ in spans:
        if not (grid[:, fixed : h0 - start] == template[fixed : h0 - start]).all():
            return None
        fixed = h1 - start
    if not (grid[:, fixed:width] == template[fixed:width]).all():
        return None
    digests: list[bytes] = []
    for h0, h1, _, _ in spans:
        block = grid[:, h0 - start : h1 - start]
        digit = (block - np.uint8(ord("0"))) < 10  # uint8 wraps below '0': one comparison per range
        letter = (block - np.uint8(ord("a"))) < 6
        if not (digit | letter).all():
            return None
        digests.append(binascii.unhexlify(block.tobytes()))
    return count, start + count * (width + 1) - 1, tuple(digests)


def _rest(before: bytes, after: bytes) -> dict[str, Any] | None:
    """The other params: the body with the array replaced, parsed twice with two stand-ins, so that the
    array is known to be the value of the top-level `batch_data` (and no other key's)."""
    try:
        zero = orjson.loads(before + b"0" + after)
        one = orjson.loads(before + b"1" + after)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(zero, dict) or not isinstance(one, dict):
        return None
    if type(zero.get("batch_data")) is not int or zero["batch_data"] != 0 or one.get("batch_data") != 1:
        return None
    return zero
