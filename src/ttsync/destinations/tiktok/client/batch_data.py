"""Build `segment/mapping/` batch_data (ref §2.1): from Python rows (`build_batch_data`, the client's
`add_segment_members`) or as JSON text straight from Arrow columns (`batch_data_json`, audience runs). Both
take only lowercase hex hashes (`HASH_PATTERNS`), so a raw identifier can never leave the process.

A mapping row is one person: entry i belongs to id_schema[i], `{}` where the person has no value for that
type, so rows stay aligned with the schema. Building the JSON text with Arrow compute avoids creating one
Python dict per identifier, which is what makes a 10M-person sync CPU-bound otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.destinations.tiktok.client.errors import ClientValidationError
from ttsync.destinations.tiktok.client.models.common import IdSchema

# The hex digest of each algorithm an id_schema names (its suffix: EMAIL_SHA256, IDFA_MD5).
HASH_PATTERNS: Final = {
    "SHA256": re.compile(r"[0-9a-f]{64}"),
    "MD5": re.compile(r"[0-9a-f]{32}"),
}
_HASH_PATTERN = "^(?:" + "|".join(p.pattern for p in HASH_PATTERNS.values()) + ")$"


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


def build_batch_data(
    id_schema: Sequence[IdSchema], rows: Iterable[Sequence[str | None]], audience_ids: Sequence[str]
) -> list[list[dict[str, object]]]:
    """Build `segment/mapping/` `batch_data`: entry *i* of each row belongs to `id_schema[i]` (ref §2.1).

    A missing value (None or "") becomes the `{}` placeholder that keeps the row aligned with the schema.
    Every value must already be a lowercase hex hash of the schema's algorithm: the client refuses to send
    anything else, so raw identifiers can never leave the process. Errors name the position, never the value.
    """
    endpoint = "segment/mapping/"
    patterns = [HASH_PATTERNS[schema.rsplit("_", 1)[1]] for schema in id_schema]
    targets = list(audience_ids)
    batch: list[list[dict[str, object]]] = []
    for row_number, row in enumerate(rows):
        if len(row) != len(patterns):
            raise ClientValidationError(
                f"request not sent: rows.{row_number} has {len(row)} values for {len(patterns)} id_schema entries",
                code=None,
                endpoint=endpoint,
                resolution_key="invalid_request",
            )
        entries: list[dict[str, object]] = []
        for column, (value, pattern) in enumerate(zip(row, patterns, strict=True)):
            if not value:
                entries.append({})
                continue
            if pattern.fullmatch(value) is None:
                raise ClientValidationError(
                    f"request not sent: rows.{row_number}.{column} is not a lowercase hex hash "
                    f"for {id_schema[column]}",
                    code=None,
                    endpoint=endpoint,
                    resolution_key="invalid_request",
                )
            entries.append({"id": value, "audience_ids": targets})
        if all(not entry for entry in entries):
            raise ClientValidationError(
                f"request not sent: rows.{row_number} has no identifier",
                code=None,
                endpoint=endpoint,
                resolution_key="invalid_request",
            )
        batch.append(entries)
    return batch
