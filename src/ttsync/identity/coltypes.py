"""Which column types ttsync reads as identifiers, row keys and event text, and how (docs/identity.md, "Column
types").

Every Arrow type a query can return has a defined behaviour: it is read as text (cast where the text is
meaningful and exact), or the run stops before anything is sent with a `ColumnTypeError` that names the
column, its type and how to fix the query. The same rules apply to the whole result's schema (checked by the
`query` task when the source knows its types without reading rows) and to each batch (sources that learn
types from the rows).

    identifiers (email, phone, idfa, aaid)  text; whole numbers (integers, DECIMAL(p, 0)) as their decimal
                                            digits; NULL-typed columns as all missing; lists of those are
                                            several identifiers per row
    row keys                                text, whole numbers, decimals, dates, times and timestamps as
                                            their text; a NULL-typed key is refused (every row would lack
                                            a key)
    event text fields                       any single value with a text form (numbers, booleans, dates)

Refused everywhere: floating-point numbers as identifiers or keys (a double holds 15-17 digits and prints in
exponent form: the identifier would silently change), BOOLEAN, BLOB, STRUCT, MAP, nested lists, and for
identifiers also dates and timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.errors import ResolvableError

Role = Literal["identifier", "key", "region", "text"]


class ColumnTypeError(ResolvableError, ValueError):
    """A query column's type cannot be read for its role; the message names the column, the type and the fix.

    A configuration error (the query must change), raised before anything is sent.
    """

    resolution_key = "configuration_error"


def _text_like(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _whole_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or (pa.types.is_decimal(t) and t.scale == 0))


def _temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t))


def _scalar_problem(t: pa.DataType, role: Role) -> str | None:
    """Why a (non-list) value of type `t` cannot serve `role`, or None when it can."""
    if pa.types.is_dictionary(t):
        return _scalar_problem(t.value_type, role)
    if _text_like(t) or pa.types.is_null(t):
        return None
    if role == "identifier":
        if _whole_number(t):
            return None
        if pa.types.is_floating(t) or pa.types.is_decimal(t):
            return (
                "a floating-point or fractional number cannot hold an identifier exactly: return text, or whole "
                "numbers for phones stored as numbers (CAST(column AS BIGINT) or CAST(column AS VARCHAR))"
            )
        return "identifiers are text (or whole numbers for phones): select the column that holds them as text"
    if role == "region":
        return "a region is a two-letter country code: return text (CAST(column AS VARCHAR))"
    if role == "key":
        if pa.types.is_integer(t) or pa.types.is_decimal(t) or _temporal(t):
            return None
        if pa.types.is_floating(t):
            return (
                "a floating-point key is inexact (0.1 + 0.2 is not 0.3): return an integer or text key "
                "(CAST(column AS BIGINT) or CAST(column AS VARCHAR))"
            )
        return "a row key is one text, number or date value per row: pick a column of that type"
    # role == "text": event fields sent as strings
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or _temporal(t):
        return None
    if pa.types.is_boolean(t):
        return None
    return "event fields are single values (text, numbers or dates): return text (CAST(column AS VARCHAR))"


def type_problem(t: pa.DataType, role: Role) -> str | None:
    """Why a column of type `t` cannot serve `role`, or None when ttsync reads it (see the module docstring)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if role != "identifier":
            return "lists are accepted for identifier columns only: return one value per row"
        inner = t.value_type
        if pa.types.is_list(inner) or pa.types.is_large_list(inner) or pa.types.is_fixed_size_list(inner):
            return "nested lists are not identifiers: flatten the list in the query (flatten(column))"
        return _scalar_problem(inner, role)
    return _scalar_problem(t, role)


def _duckdb_like(t: pa.DataType) -> str:
    """The type's name as users see it in SQL, with Arrow's name after it (the message names both)."""
    names = {
        "null": "NULL",
        "double": "DOUBLE",
        "float": "FLOAT",
        "bool": "BOOLEAN",
        "binary": "BLOB",
        "large_binary": "BLOB",
        "date32[day]": "DATE",
    }
    arrow = str(t)
    if arrow in names:
        return names[arrow]
    for prefix, name in (("timestamp", "TIMESTAMP"), ("struct", "STRUCT"), ("map", "MAP"), ("list", "LIST")):
        if arrow.startswith(prefix):
            return f"{name} ({arrow})"
    return arrow


def check_column_type(column: str, t: pa.DataType, role: Role) -> None:
    """Raise `ColumnTypeError` when column `column` of type `t` cannot serve `role`."""
    problem = type_problem(t, role)
    if problem is None and role == "key" and pa.types.is_null(t):
        problem = (
            "the key column is NULL in every row, so no row could be kept: select the column with the keys"
        )
    if problem is not None:
        what = {"identifier": "identifier", "key": "key", "region": "region", "text": "event"}[role]
        raise ColumnTypeError(f"{what} column {column!r} has type {_duckdb_like(t)}: {problem}")


def check_schema(schema: pa.Schema, roles: Mapping[str, Role]) -> None:
    """Check each named column of a query's schema for its role; every problem is listed in one error."""
    problems: list[str] = []
    for column, role in roles.items():
        if column not in schema.names:
            continue  # a missing column is reported by the column mapping, with its own fix
        try:
            check_column_type(column, schema.field(column).type, role)
        except ColumnTypeError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise ColumnTypeError(problems[0])
    if problems:
        raise ColumnTypeError("the query's column types do not fit:\n  " + "\n  ".join(problems))


def as_text(column: str, values: pa.Array | pa.ChunkedArray, role: Role) -> pa.Array:
    """A column's (non-list) values as a string array under the rules of `role`, or `ColumnTypeError`."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    t = values.type
    if pa.types.is_string(t):
        return values
    problem = type_problem(t, role)
    if problem is not None:
        check_column_type(column, t, role)
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    return pc.cast(values, pa.string())
