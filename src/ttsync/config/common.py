"""What the configuration models share: object names, the kinds, the base model, readable validation errors.

Neutral: no destination's rules live here (TikTok's are `ttsync.destinations.tiktok.settings`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

Environment = Literal["sandbox", "production"]
DestinationKind = Literal["audience", "offline_events"]
SourceKind = Literal["duckdb", "sqlalchemy", "csv", "parquet", "spark"]
UserIdType = Literal["EMAIL", "PHONE", "IDFA", "AAID"]

_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_NAME_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


def _check_object_name(value: str) -> str:
    if not _OBJECT_NAME.match(value):
        raise ValueError(
            "names start with a letter or digit and use only letters, digits, '-', '_' and '.' "
            "(at most 80 characters), for example 'tiktok-audiences'"
        )
    return value


ObjectName = Annotated[str, AfterValidator(_check_object_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One readable line per problem, without echoing the offending input (it may be a secret or PII)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting: check the spelling (see docs/configuration.md)"
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "use one of")
        lines.append(f"{where}{'.' + loc if loc else ''}: {msg}")
    return "\n".join(lines)
