"""Map a query's columns to offline-event parameters (the data template's attribute mapping, then the table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ttsync.errors import ResolvableError
from ttsync.events.parameters import Parameter, ParamType, parameter_for


class EventColumnsError(ResolvableError, ValueError):
    """The query's columns cannot make offline events (a missing required column, an ambiguous mapping).

    `resolution_key` names the resolution the workflow shows; the message says what to change.
    """

    resolution_key = "invalid_event_columns"


@dataclass(frozen=True)
class ColumnPlan:
    """Which source column feeds which parameter. Emails and phones may come from several columns."""

    by_param: dict[str, str]  # parameter name -> source column (single-valued parameters)
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default_factory=tuple)  # columns that are not parameters

    def column(self, param: str) -> str | None:
        """The source column of a single-valued parameter, or None when the query does not return it."""
        return self.by_param.get(param)


def plan_columns(
    columns: Sequence[str],
    *,
    key_column: str | None,
    attribute_mapping: Mapping[str, str] | None = None,
    derive_event_id: bool = False,
) -> ColumnPlan:
    """Decide which column feeds which parameter, or raise `EventColumnsError` naming what to fix.

    `attribute_mapping` maps a source column to a parameter name (or an alias, or TikTok's name); columns not
    in it are matched by their own name. Required: `event`, `timestamp`, an email or phone column, and
    `event_id` unless `derive_event_id` is set. `event_set_id` may be left to the destination's settings.
    """
    if key_column is not None and key_column not in columns:
        raise EventColumnsError(
            f"the query returns no key column {key_column!r}: add it to the SELECT or fix `key_column` "
            "on the orchestration"
        )
    mapping = {k.lower(): v for k, v in (attribute_mapping or {}).items()}
    by_param: dict[str, str] = {}
    emails: list[str] = []
    phones: list[str] = []
    ignored: list[str] = []
    for column in columns:
        if column == key_column and column.lower() not in mapping and parameter_for(column) is None:
            continue  # a pure row key (e.g. a customer id); a key that is also a parameter (event_id) is both
        target = mapping.get(column.lower(), column)
        param: Parameter | None = parameter_for(target)
        if param is None:
            if column.lower() in mapping:
                raise EventColumnsError(
                    f"the data template maps column {column!r} to {target!r}, which is not an offline-event "
                    "parameter: use a name from the parameter table in docs/events.md"
                )
            ignored.append(column)
            continue
        if param.type is ParamType.EMAIL:
            emails.append(column)
        elif param.type is ParamType.PHONE:
            phones.append(column)
        elif param.name in by_param:
            raise EventColumnsError(
                f"columns {by_param[param.name]!r} and {column!r} both stand for `{param.name}`: "
                "keep one of them in the query or the data template's attribute mapping"
            )
        else:
            by_param[param.name] = column
    missing = [name for name in ("event", "timestamp") if name not in by_param]
    if "event_id" not in by_param and not derive_event_id:
        missing.append("event_id")
    if not emails and not phones:
        missing.append("email or phone")
    if missing:
        raise EventColumnsError(
            f"the query returns no column for {', '.join(missing)}: add it to the SELECT (see the parameter "
            "table in docs/events.md)"
            + (
                "; or set `derive_event_id: true` on the data template to derive event ids"
                if "event_id" in missing
                else ""
            )
        )
    return ColumnPlan(by_param=by_param, emails=tuple(emails), phones=tuple(phones), ignored=tuple(ignored))
