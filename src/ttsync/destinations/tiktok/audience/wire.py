"""Build `segment/mapping/` batch_data JSON straight from Arrow columns (ref §2.1).

A mapping row is one person: entry i belongs to id_schema[i], `{}` where the person has no value for that
type, so rows stay aligned with the schema. Building the JSON text with Arrow compute avoids creating one
Python dict per identifier, which is what makes a 10M-person sync CPU-bound otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_HASH_PATTERN = r"^(?:[0-9a-f]{64}|[0-9a-f]{32})$"


def batch_data_json(batch: pa.RecordBatch, audience_ids: Sequence[str]) -> str:
    """The JSON array for `batch_data`: one row per record, one entry per column (null -> `{}`).

    Values must be lowercase hex SHA-256 or MD5 hashes: checked here for the whole batch at once (so a raw
    value can never leave the process, and no value needs JSON escaping); otherwise `ValueError`.
    """
    if batch.num_columns == 0 or batch.num_rows == 0:
        return "[]"
    tail = '","audience_ids":' + json.dumps([str(a) for a in audience_ids]) + "}"
    cells: list[pa.Array] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        text = pc.cast(column, pa.string())
        if pc.any(pc.invert(pc.match_substring_regex(text, _HASH_PATTERN))).as_py():
            raise ValueError(f"column {name}: values that are not lowercase hex hashes cannot be sent")
        entry = pc.binary_join_element_wise('{"id":"', text, tail, "")
        cells.append(pc.fill_null(entry, "{}"))
    parts: list[pa.Array | str] = ["["]
    for i, cell in enumerate(cells):
        if i:
            parts.append(",")
        parts.append(cell)
    parts.append("]")
    rows = pc.binary_join_element_wise(*parts, "")
    return "[" + ",".join(rows.to_pylist()) + "]"
