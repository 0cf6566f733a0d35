"""Build `segment/mapping/` batch_data (ref §2.1): from Python rows (`mapping_rows_bytes`, the client's
`add_segment_members`) or as JSON straight from Arrow columns (`batch_data_bytes`, audience runs). Both
take only lowercase hex hashes (`HASH_PATTERNS`), so a raw identifier can never leave the process.

A mapping row is one person: entry i belongs to id_schema[i], `{}` where the person has no value for that
type, so rows stay aligned with the schema. Building the JSON text with Arrow compute avoids creating one
Python dict per identifier, which is what makes a 10M-person sync CPU-bound otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.destinations.tiktok.client.errors import ClientValidationError
from ttsync.destinations.tiktok.client.models.common import IdSchema

# The hex digest of each algorithm an id_schema names (its suffix: EMAIL_SHA256, IDFA_MD5).
HASH_PATTERNS: Final = {
    "SHA256": re.compile(r"[0-9a-f]{64}"),
    "MD5": re.compile(r"[0-9a-f]{32}"),
}

_HASH_LENGTHS: Final = {"SHA256": 64, "MD5": 32}
# One regex over a whole column of hashes joined by newlines: exactly the values HASH_PATTERNS accepts one by one.
_COLUMN_PATTERNS: Final = {
    name: re.compile(rf"(?:{pattern.pattern}\n)*{pattern.pattern}") for name, pattern in HASH_PATTERNS.items()
}


def batch_data_json(batch: pa.RecordBatch, audience_ids: Sequence[str]) -> str:
    """The JSON array for `batch_data` as text (see `batch_data_bytes`, which the upload sends)."""
    return batch_data_bytes(batch, audience_ids).decode()


def batch_data_bytes(batch: pa.RecordBatch, audience_ids: Sequence[str]) -> bytes:
    """The JSON array for `batch_data`, UTF-8: one row per record, one entry per column (null -> `{}`).

    Values must be lowercase hex SHA-256 or MD5 hashes: checked here for the whole batch at once (so a raw
    value can never leave the process, and no value needs JSON escaping); otherwise `ValueError`. Each row is
    written with a trailing comma by one Arrow kernel call, so the array is the kernel's data buffer as it
    is, minus the last comma: no Python object per row.
    """
    if batch.num_columns == 0 or batch.num_rows == 0:
        return b"[]"
    tail = '","audience_ids":' + json.dumps([str(a) for a in audience_ids]) + "}"
    texts: list[pa.Array] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        text = pc.cast(column, pa.string())
        if not _all_hex_digests(text):
            raise ValueError(f"column {name}: values that are not lowercase hex hashes cannot be sent")
        texts.append(text)
    if len(texts) == 1 and texts[0].null_count == 0:  # the common case: one identifier type, no gaps
        rows = pc.binary_join_element_wise('[{"id":"', texts[0], tail + "],", "")
    else:
        parts: list[pa.Array | str] = ["["]
        for i, text in enumerate(texts):
            if i:
                parts.append(",")
            parts.append(pc.fill_null(pc.binary_join_element_wise('{"id":"', text, tail, ""), "{}"))
        parts.append("],")
        rows = pc.binary_join_element_wise(*parts, "")
    offsets = np.frombuffer(rows.buffers()[1], np.int32)
    data = memoryview(rows.buffers()[2])[offsets[rows.offset] : offsets[rows.offset + len(rows)] - 1]
    return b"".join((b"[", data, b"]"))


def _all_hex_digests(text: pa.Array) -> bool:
    """True when every non-null value is 64 or 32 lowercase hex characters (SHA-256, MD5).

    Vectorized over the Arrow buffers (lengths from the offsets, bytes by range): ~10x cheaper than a regex
    kernel, which matters at 10,000 identifiers a request.
    """
    values = pc.drop_null(text) if text.null_count else text
    if len(values) == 0:
        return True
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
    lengths = np.diff(offsets)
    if not ((lengths == 64) | (lengths == 32)).all():
        return False
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    digit = (data - np.uint8(ord("0"))) < 10  # uint8 wraps below '0': one comparison per range
    letter = (data - np.uint8(ord("a"))) < 6
    return bool((digit | letter).all())


def build_batch_data(
    id_schema: Sequence[IdSchema], rows: Iterable[Sequence[str | None]], audience_ids: Sequence[str]
) -> list[list[dict[str, object]]]:
    """Build `segment/mapping/` `batch_data` as Python objects (see `mapping_rows_bytes`, which the client sends).

    Entry *i* of each row belongs to `id_schema[i]` (ref §2.1); the checks and errors are `mapping_rows_bytes`'s.
    """
    built: list[list[dict[str, object]]] = json.loads(mapping_rows_bytes(id_schema, rows, audience_ids))
    return built


def mapping_rows_bytes(
    id_schema: Sequence[IdSchema], rows: Iterable[Sequence[str | None]], audience_ids: Sequence[str]
) -> bytes:
    """The JSON array for `batch_data` from Python rows, UTF-8: entry *i* of each row belongs to `id_schema[i]`.

    A missing value (None or "") becomes the `{}` placeholder that keeps the row aligned with the schema.
    Every value must already be a lowercase hex hash of the schema's algorithm: the client refuses to send
    anything else (`ClientValidationError`), so raw identifiers can never leave the process. Errors name the
    position, never the value.

    One pass, straight to text: a checked hash needs no JSON escaping, so each row is one string. Building a
    dict per identifier (and a model around them) cost more CPU than the HTTP request, and its thousands of
    container objects per request set off garbage collections that stalled the event loop between a paced
    send's slot and its write, which the server then counted as a burst.
    """
    patterns = [_pattern(i, schema).fullmatch for i, schema in enumerate(id_schema)]
    if not patterns:
        raise _row_error("id_schema is empty: name the type of each row entry (e.g. EMAIL_SHA256)")
    width = len(patterns)
    tail = '","audience_ids":' + json.dumps([str(a) for a in audience_ids], separators=(",", ":")) + "}"
    rows = rows if isinstance(rows, list) else list(rows)
    if width == 1 and (hashes := _one_hash_column(rows, id_schema[0])) is not None:
        return ('[[{"id":"' + (tail + '],[{"id":"').join(hashes) + tail + "]]").encode()
    texts: list[str] = []
    for row_number, row in enumerate(rows):
        if len(row) != width:
            raise _row_error(f"rows.{row_number} has {len(row)} values for {width} id_schema entries")
        entries: list[str] = []
        for column, value in enumerate(row):
            if not value:
                entries.append("{}")
            elif not isinstance(value, str) or patterns[column](value) is None:
                raise _row_error(
                    f"rows.{row_number}.{column} is not a lowercase hex hash for {id_schema[column]}"
                )
            else:
                entries.append('{"id":"' + value + tail)
        if len(entries) == entries.count("{}"):
            raise _row_error(f"rows.{row_number} has no identifier")
        texts.append("[" + ",".join(entries) + "]")
    if not texts:
        raise _row_error("rows is empty: a mapping request needs at least one row")
    return ("[" + ",".join(texts) + "]").encode()


def _one_hash_column(rows: list[Sequence[str | None]], schema: str) -> list[str] | None:
    """The values of one-entry rows when every one is a valid hash for `schema`, checked by one regex over
    them all (a tenth of the cost of a match per value); None when any row is not, and the per-row pass
    then finds the first bad one and says why."""
    try:
        # Typed as str: the join below raises TypeError on anything else (a None, a number).
        column = cast(list[str], [value for (value,) in rows])
        joined = "\n".join(column)  # TypeError on a None or a non-string: the per-row pass names it
    except (TypeError, ValueError):
        return None
    algorithm = schema.rsplit("_", 1)[-1]
    # As many hashes as values: a value holding a newline between two hashes must not pass as two.
    if len(joined) != len(column) * (_HASH_LENGTHS[algorithm] + 1) - 1:
        return None
    if _COLUMN_PATTERNS[algorithm].fullmatch(joined) is None:
        return None
    return column


def _pattern(index: int, schema: str) -> re.Pattern[str]:
    """The hash pattern of an id_schema entry (its suffix names the algorithm)."""
    pattern = HASH_PATTERNS.get(str(schema).rsplit("_", 1)[-1])
    if pattern is None:
        raise _row_error(
            f"id_schema.{index} is not a hashed identifier type such as EMAIL_SHA256 or IDFA_MD5"
        )
    return pattern


def _row_error(reason: str) -> ClientValidationError:
    return ClientValidationError(
        f"request not sent: {reason}",
        code=None,
        endpoint="segment/mapping/",
        resolution_key="invalid_request",
    )
