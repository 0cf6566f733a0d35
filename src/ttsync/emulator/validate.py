"""Hand-written field checks with TikTok-style messages naming the exact field path (ref §1, §6, §8).

Kept as small functions over plain dicts (no pydantic) because event/track/ and segment/mapping/ validate
hundreds of thousands of items per second.
"""

from __future__ import annotations

import json
from typing import Any

from ttsync.emulator.errors import param_error

MISSING = "Missing data for required field"
NOT_STRING = "Not a valid string"
NOT_INT = "Not a valid integer"
NOT_LIST = "Not a valid list"
NOT_BOOL = "Not a valid boolean"


def _name(key: str, prefix: str) -> str:
    return f"{prefix}{key}" if prefix else key


def req_str(obj: dict[str, Any], key: str, prefix: str = "", *, allow_empty: bool = False) -> str:
    """A required string field (IDs are strings in v1.3; a number here is an error, ref §1)."""
    value = obj.get(key)
    if value is None:
        raise param_error(_name(key, prefix), MISSING)
    if not isinstance(value, str):
        raise param_error(_name(key, prefix), NOT_STRING)
    if not value and not allow_empty:
        raise param_error(_name(key, prefix), "Field must not be empty")
    return value


def opt_str(obj: dict[str, Any], key: str, prefix: str = "") -> str | None:
    """An optional string field."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise param_error(_name(key, prefix), NOT_STRING)
    return value


def one_of(value: str, allowed: tuple[str, ...] | frozenset[str], field: str) -> str:
    """Check an enum value."""
    if value not in allowed:
        raise param_error(field, "Must be one of: " + ", ".join(sorted(allowed)))
    return value


def str_list(
    obj: dict[str, Any], key: str, lo: int, hi: int, prefix: str = "", *, required: bool = True
) -> list[str]:
    """A list of strings with a length range (POST bodies)."""
    value = obj.get(key)
    name = _name(key, prefix)
    if value is None:
        if required:
            raise param_error(name, MISSING)
        return []
    if not isinstance(value, list):
        raise param_error(name, NOT_LIST)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise param_error(f"{name}.{i}", NOT_STRING)
    if not lo <= len(value) <= hi:
        raise param_error(name, f"Length must be between {lo} and {hi}")
    return value


def opt_int(obj: dict[str, Any], key: str, lo: int, hi: int, default: int | None) -> int | None:
    """An optional integer in a range. Query strings hold digits; JSON bodies hold numbers."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise param_error(key, NOT_INT) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise param_error(key, NOT_INT)
    if not lo <= value <= hi:
        raise param_error(key, f"Must be greater than or equal to {lo} and less than or equal to {hi}")
    return value


def query_list(params: dict[str, Any], key: str, lo: int, hi: int, *, required: bool) -> list[str] | None:
    """A GET array parameter, sent as a JSON-encoded string such as ``["123"]`` (ref §1)."""
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise param_error(key, MISSING)
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise param_error(key, NOT_LIST) from None
    if not isinstance(value, list):
        raise param_error(key, NOT_LIST)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise param_error(f"{key}.{i}", NOT_STRING)
    if not lo <= len(value) <= hi:
        raise param_error(key, f"Length must be between {lo} and {hi}")
    return value


def opt_bool(obj: dict[str, Any], key: str, default: bool) -> bool:
    """An optional boolean (JSON true/false; "true"/"false" in queries)."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    value = str(value)
    if value in ("true", "false"):
        return value == "true"
    raise param_error(key, NOT_BOOL)
