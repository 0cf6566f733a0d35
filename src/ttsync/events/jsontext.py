"""JSON text from Arrow columns, one value per row, without a Python object per value.

The event payload (`grouping.py`) is assembled with `members`: `"key":value` for each field, a field left
out where its value is NULL (never sent as null). Each kernel call walks every row, so the fields that have a
value on every row are joined in one call, quotes and keys included; only fields missing on some rows cost a
call of their own. Strings are escaped as JSON requires (quote, backslash, control characters); the few values
that need it go through `json.dumps`, the rest are used as they are. Numbers keep their shortest exact text.
"""

from __future__ import annotations

import json
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Characters a JSON string must escape (RFC 8259 §7): the quote, the backslash and U+0000 to U+001F.
_NEEDS_ESCAPE: Final = r'["\\\x00-\x1f]'
_STRING: Final = pa.string()

# (key, values, before, after): each value is written as `"key":` before value after, e.g. a string's escaped
# text between quotes, a number as it is, a list of item objects between `[{` and `}]`.
Field = tuple[str, pa.Array, str, str]


def text(key: str, values: pa.Array) -> Field:
    """A string field (escaped here)."""
    return key, escape(values), '"', '"'


def plain_text(key: str, values: pa.Array) -> Field:
    """A string field whose values need no escaping (validated to lists of plain words, or hex hashes)."""
    return key, _plain(values), '"', '"'


def raw(key: str, values: pa.Array, before: str = "", after: str = "") -> Field:
    """A field whose values are JSON text already (numbers, arrays, objects), with optional literal wrapping."""
    return key, values, before, after


def escape(values: pa.Array) -> pa.Array:
    """Each string escaped for use between JSON quotes (the quotes are not added); NULL stays NULL."""
    values = _plain(values)
    if not _any_special(values):
        return values
    special = pc.fill_null(pc.match_substring_regex(values, _NEEDS_ESCAPE), False)
    if not pc.any(special).as_py():
        return values
    # Rare: escape only the values that need it, keeping non-ASCII text as it is (JSON is UTF-8).
    escaped = [json.dumps(v, ensure_ascii=False)[1:-1] for v in pc.filter(values, special).to_pylist()]
    return pc.replace_with_mask(values, special, pa.array(escaped, _STRING))


def number(values: pa.Array) -> pa.Array:
    """Integers and finite doubles as JSON numbers (`2`, `10.5`, `1e+20`); NULL stays NULL."""
    return pc.cast(values, _STRING)


def members(fields: list[Field], length: int, *, before: str = "", after: str = "") -> pa.Array:
    """`before"k1":v1,"k2":v2after` per row, leaving out NULL values; an empty string (without `before` and
    `after`) where every value is NULL.

    Keys are fixed names (no escaping). The order of the members may differ between chunks (fields with a
    value on every row come first), which JSON objects do not care about.
    """
    given = [f for f in fields if f[1].null_count < length]
    dense = [f for f in given if f[1].null_count == 0]
    sparse = [f for f in given if f[1].null_count]
    args: list[str | pa.Array] = []
    literal = before if not sparse else ""
    for key, values, open_, close in dense:
        args += [f'{literal}"{key}":{open_}', values]
        literal = close + ","
    joined: pa.Array | None = None
    if args:
        args.append(literal[:-1] + (after if not sparse else ""))
        joined = pc.binary_join_element_wise(*args, "")
        if not sparse:
            return joined
    for key, values, open_, close in sparse:
        fragment = pc.binary_join_element_wise(f'"{key}":{open_}', values, close, "")
        if joined is None:
            joined = fragment
        else:
            # Not `binary_join_element_wise(..., null_handling="skip")`: pyarrow 26 drops the rows where
            # every input is NULL from its output, so the result would come out shorter than its inputs.
            joined = pc.coalesce(pc.binary_join_element_wise(joined, fragment, ","), joined, fragment)
    if joined is None:
        return pa.repeat(pa.scalar("", _STRING), length)
    if before or after:
        joined = pc.binary_join_element_wise(before, joined, after, "")
    return pc.fill_null(joined, "") if joined.null_count else joined


def inline(key: str, fields: list[Field], length: int) -> list[Field] | None:
    """The object `"key":{...}` of `fields` as fields of its parent, for `members` to write in the same pass as
    the parent's other fields: only when every field given has a value on every row (else None: write the
    object with `members` and pass it as a `raw` field)."""
    given = [f for f in fields if f[1].null_count < length]
    if not given or any(f[1].null_count for f in given):
        return None
    (first_key, values, open_, close), *rest = given
    out: list[Field] = [(key, values, '{"' + first_key + '":' + open_, close), *rest]
    last_key, values, open_, close = out[-1]
    out[-1] = (last_key, values, open_, close + "}")
    return out


def join_all(texts: pa.Array, separator: str) -> str:
    """All of `texts` joined with `separator`, as one Python string (one kernel call, no object per value)."""
    if len(texts) == 0:
        return ""
    one_list = pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts)
    joined: str = pc.binary_join(one_list, separator)[0].as_py()
    return joined


def join_all_bytes(texts: pa.Array, separator: str, before: str = "", after: str = "") -> bytes:
    """`before` + all of `texts` joined with `separator` + `after`, as UTF-8 bytes: one kernel call and no
    Python string (`join_all` decodes the text into one, and a request encodes it back)."""
    if len(texts) == 0:
        return (before + after).encode()
    one_list = pa.ListArray.from_arrays(
        pa.array([0, len(texts)], pa.int32()), _plain(texts).cast(pa.binary())
    )
    joined: bytes = pc.binary_join(one_list, separator.encode())[0].as_py()
    return b"".join((before.encode(), joined, after.encode()))


def _any_special(values: pa.Array) -> bool:
    """Whether the strings hold a quote, a backslash or a control character (no per-value work).

    Only the bytes of `values` are read: a slice shares its parent's data buffer, and scanning all of it
    for each 1,000-event request cost more than the rest of recording it."""
    _, offsets, data = values.buffers()
    if data is None or not len(values):
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)[[values.offset, values.offset + len(values)]]
    raw_bytes = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[1]]
    # Three reductions without temporary masks: several times faster than one combined mask.
    return bool(len(raw_bytes)) and bool(
        raw_bytes.min() < 0x20 or (raw_bytes == 0x22).any() or (raw_bytes == 0x5C).any()
    )


def with_validity(values: pa.Array, valid: pa.Array) -> pa.Array:
    """`values` with NULL where `valid` is false, without copying the strings (`if_else` copies each one)."""
    values = _plain(values)
    if values.null_count:
        valid = pc.and_(valid, pc.is_valid(values))
    valid = pc.fill_null(valid, False)
    if values.offset or valid.offset:
        return pc.if_else(valid, values, pa.scalar(None, _STRING))
    offsets, data = values.buffers()[1:]
    return pa.Array.from_buffers(_STRING, len(values), [valid.buffers()[1], offsets, data])


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == _STRING else values.cast(_STRING)
