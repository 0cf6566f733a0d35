"""The emulator's fast reader of compact `segment/mapping/` bodies answers exactly like the generic path."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest

from ttsync.emulator.embedded import EmulatorServer, RawApi
from ttsync.emulator.endpoints.mapping_body import PackedRows, parse_mapping_body


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def md5(value: str) -> str:
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


def expand(rows: PackedRows) -> list[list[dict[str, Any]]]:
    """The rows as the generic parser reads them."""
    columns = [[digest.hex() for digest in rows.column(c)] for c in range(len(rows.hash_lengths))]
    return [
        [{"id": columns[c][r], "audience_ids": list(rows.audience_ids[c])} for c in range(len(columns))]
        for r in range(rows.count)
    ]


def body(
    schema: list[str], rows: list[list[dict[str, Any]]], adv: str = "1", *, compact: bool = True
) -> bytes:
    fields = {"advertiser_ids": [adv], "action": "add", "id_schema": schema, "batch_data": rows}
    if compact:
        return json.dumps(fields, separators=(",", ":")).encode()
    return json.dumps(fields).encode()


def entry(value: str, *audiences: str) -> dict[str, Any]:
    return {"id": value, "audience_ids": list(audiences)}


def test_compact_rows_read_as_the_generic_parser_reads_them() -> None:
    rows = [[entry(sha(f"e{i}"), "7", "8"), entry(md5(f"i{i}"), "7, 8")] for i in range(30)]
    raw = body(["EMAIL_SHA256", "IDFA_MD5"], rows)
    params = parse_mapping_body(raw)
    assert params is not None
    packed = params.pop("batch_data")
    assert isinstance(packed, PackedRows)
    generic = orjson.loads(raw)
    assert expand(packed) == generic.pop("batch_data")
    assert params == generic


@pytest.mark.parametrize(
    "raw",
    [
        body(["EMAIL_SHA256"], [[entry(sha("a"), "7")], [entry(sha("b").upper(), "7")]]),
        body(["EMAIL_SHA256"], [[entry(sha("a"), "7")], [entry(sha("b"), "8")]]),
        body(["EMAIL_SHA256"], [[entry(sha("a"), "7")], [entry(md5("b"), "7")]]),
        body(["EMAIL_SHA256", "IDFA_MD5"], [[entry(sha("a"), "7"), {}]]),
        body(["EMAIL_SHA256"], [[entry(sha("a"), "7")]], compact=False),
        body(["EMAIL_SHA256"], [[entry(sha("a"), 'q"uote')]]),
        body(["EMAIL_SHA256"], [[entry(sha("a"))]]),
        body(["EMAIL_SHA256"], [[entry("ab" * 20, "7")]]),
        body(["EMAIL_SHA256"], []),
        # batch_data twice: the generic parser keeps the last one, so the fast path must not read the first.
        b'{"id_schema":["EMAIL_SHA256"],"batch_data":[[{"id":"'
        + sha("a").encode()
        + b'","audience_ids":["7"]}]]'
        b',"batch_data":5}',
        # The compact array is another key's value; the top-level key is spelled with an escape.
        b'{"x":{"batch_data":[[{"id":"' + sha("a").encode() + b'","audience_ids":["7"]}]]},'
        b'"batch\\u005fdata":0}',
        b'{"batch_data":[[{"id":"' + sha("a").encode() + b'","audience_ids":["7"]}]] "x":1}',
        b'{"batch_data":[[{"id":"' + sha("a").encode() + b'","audience_ids":["7\x01"]}]]}',
    ],
    ids=[
        "uppercase",
        "other-audience",
        "other-length",
        "placeholder",
        "spaced",
        "escape",
        "no-audience",
        "odd-length",
        "empty",
        "duplicate-key",
        "nested",
        "invalid-json",
        "control-char",
    ],
)
def test_anything_but_the_compact_layout_goes_the_generic_way(raw: bytes) -> None:
    assert parse_mapping_body(raw) is None


def test_compact_and_spaced_bodies_get_the_same_answers(emulator: EmulatorServer, raw_api: RawApi) -> None:
    """Every answer the row-by-row path gives (spaced JSON) is given for the compact layout too, and the
    members end the same."""
    adv = emulator.seed.advertiser_ids[0]
    made = raw_api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "Fast"})
    aud = str(made["data"]["audience_id"])
    rows = [[entry(sha(f"e{i}"), aud), entry(md5(f"i{i}"), aud)] for i in range(20)]
    cases = [
        (["EMAIL_SHA256", "IDFA_MD5"], rows),
        (["EMAIL_SHA256", "IDFA_SHA256"], rows),  # an MD5 where a SHA-256 belongs: row 0 named
        (["IDFA_MD5", "EMAIL_SHA256"], rows),
        (["EMAIL_SHA256"], rows),  # rows wider than the schema
        (["EMAIL_SHA256", "IDFA_MD5"], [[entry(sha("x"), "7000000000000000009"), entry(md5("y"), aud)]]),
        (["EMAIL_SHA256", "IDFA_MD5"], [[entry(sha("x"), aud), entry(md5("y"), aud, "7000000000000000009")]]),
    ]
    for schema, case_rows in cases:
        compact = raw_api.http.post("segment/mapping/", content=body(schema, case_rows, adv)).json()
        members = emulator.admin.audience_members(aud)
        spaced = raw_api.http.post(
            "segment/mapping/", content=body(schema, case_rows, adv, compact=False)
        ).json()
        assert (compact["code"], compact["message"]) == (spaced["code"], spaced["message"]), schema
        assert emulator.admin.audience_members(aud) == members
    assert emulator.admin.audience_members(aud) == {
        "EMAIL_SHA256": {sha(f"e{i}") for i in range(20)},
        "IDFA_MD5": {md5(f"i{i}") for i in range(20)},
    }
