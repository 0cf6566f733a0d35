"""docs/identity.md's test vectors, checked through the scalar and the vectorized path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ttsync.identity import ColumnSpec, InvalidIdentifier, Preparer, normalize, prepare_value

DOC = Path(__file__).resolve().parents[1] / "docs" / "identity.md"


def _vectors() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- vectors:start -->", 1)[1].split("<!-- vectors:end -->", 1)[0]
    rows = []
    for line in block.strip().splitlines()[2:]:  # skip the header and the |---| line
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        kind, raw_input, options, normalized, digest = cells
        opts = dict(o.split("=", 1) for o in options.split()) if options else {}
        rows.append(
            {
                "kind": kind,
                "input": json.loads(raw_input.strip("`")),
                "options": opts,
                "normalized": normalized.strip("`") or None,
                "digest": digest.strip("`"),
            }
        )
    return rows


VECTORS = _vectors()


def test_doc_has_the_reference_vectors() -> None:
    digests = {v["digest"] for v in VECTORS}
    # ref §6.4, all six
    for expected in (
        "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f",
        "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd",
        "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b",
        "584c4423c421df49955759498a71495aba49b8780eb9387dff333b6f0982c777",
        "c775e7b757ede630cd0aa1113bd102661ab38829ca52a6422ab782862f268646",
        "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69",
    ):
        assert expected in digests
    assert len(VECTORS) >= 25


def _spec(vector: dict[str, Any]) -> ColumnSpec:
    return ColumnSpec(column="v", kind=vector["kind"], **vector["options"])


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['kind']}:{v['input']!r}" for v in VECTORS])
def test_vector_scalar(vector: dict[str, Any]) -> None:
    spec = _spec(vector)
    expected = vector["digest"]
    if expected.startswith("reject:"):
        with pytest.raises(InvalidIdentifier) as info:
            prepare_value(spec, vector["input"])
        assert info.value.reason.value == expected.removeprefix("reject:")
        return
    assert prepare_value(spec, vector["input"]) == expected
    if vector["normalized"] is not None:
        got = normalize(spec.kind, vector["input"], region=spec.region)
        assert got == vector["normalized"]


def test_vectors_vectorized() -> None:
    """All vectors in one batch per spec, through the Preparer (the path real runs take)."""
    for vector in VECTORS:
        spec = _spec(vector)
        with Preparer([spec], key_column="k") as preparer:
            out = preparer.process(pa.record_batch({"k": ["row-1"], "v": [vector["input"]]}))
        expected = vector["digest"]
        if expected.startswith("reject:"):
            assert out.ids.num_rows == 0, vector
            assert out.rejects.to_pylist() == [
                {"row_key": "row-1", "column": "v", "reason": expected.removeprefix("reject:")}
            ], vector
        else:
            assert out.rejects.num_rows == 0, vector
            assert out.ids.column("hash").to_pylist() == [expected], vector
            assert re.fullmatch(r"[A-Z_0-9]+", out.ids.column("id_schema")[0].as_py())
