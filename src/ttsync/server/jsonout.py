"""JSON answers written by orjson, for endpoints that build plain dicts rather than pydantic models.

The JSON has the values FastAPI would write for the route's `response_model`: compact, UTF-8, timestamps in
ISO 8601 with `Z` for UTC (naive ones, as SQLite returns them, are UTC), NaN and infinities as null. An
`orjson.Fragment` (a JSON column's stored text) goes in as it is, spacing and escapes as it was stored."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def json_response(content: Any, status_code: int = 200) -> Response:
    """`content` as an `application/json` response."""
    return Response(
        orjson.dumps(content, option=_OPTIONS), status_code=status_code, media_type="application/json"
    )
