"""What the configuration models share: object names, identifier literals, the base model, audience names."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
)

# ref §1: production base URL of the Business API v1.3.
PRODUCTION_BASE_URL = "https://business-api.tiktok.com/open_api/v1.3/"
SANDBOX_URL_ENV = "TTSYNC_SANDBOX_URL"

Environment = Literal["sandbox", "production"]
DestinationKind = Literal["audience", "offline_events"]
SourceKind = Literal["duckdb", "sqlalchemy", "csv", "parquet", "spark"]
UserIdType = Literal["EMAIL", "PHONE", "IDFA", "AAID"]
Delivery = Literal["partner", "customer_file"]
SyncMode = Literal["mirror", "append", "create", "replace"]
EventSource = Literal["offline", "web", "crm"]
PhoneFormat = Literal["e164", "digits"]

# ref §2.1: Segment API names longer than 70 characters are cut to 67 characters plus "...".
# ref §2.1: Segment API names longer than 70 characters are cut to 67 characters plus "...".
AUDIENCE_NAME_MAX = 70
AUDIENCE_NAME_CUT = 67
_STRICT_NAME = re.compile(r"^[A-Za-z0-9 _-]{10,70}$")
_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_DIGITS = re.compile(r"^[0-9]{1,32}$")
_NAME_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


def _check_object_name(value: str) -> str:
    if not _OBJECT_NAME.match(value):
        raise ValueError(
            "names start with a letter or digit and use only letters, digits, '-', '_' and '.' "
            "(at most 80 characters), for example 'tiktok-audiences'"
        )
    return value


def _check_digits(value: str) -> str:
    if not _DIGITS.match(value):
        raise ValueError(
            "TikTok ids are strings of digits, for example '7654321098765432109'; "
            "quote them in YAML so they stay strings"
        )
    return value


ObjectName = Annotated[str, AfterValidator(_check_object_name)]
DigitsId = Annotated[str, AfterValidator(_check_digits)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def audience_name_warning(name: str) -> str | None:
    """Return the warning to show when TikTok will truncate `name`, or None when it fits.

    TikTok cuts Segment-API audience names longer than 70 characters to 67 plus "..." (ref §2.1).
    """
    if len(name) <= AUDIENCE_NAME_MAX:
        return None
    shown = name[:AUDIENCE_NAME_CUT] + "..."
    return (
        f"audience name is {len(name)} characters; TikTok keeps at most {AUDIENCE_NAME_MAX} "
        f"and will show it as {shown!r}: shorten it to keep it recognizable"
    )


def check_strict_audience_name(name: str) -> str:
    """Enforce the optional strict audience-name rule: 10-70 letters, digits, spaces, '-' and '_'."""
    if not _STRICT_NAME.match(name):
        raise ValueError(
            "with strict_audience_name, an audience name has 10 to 70 characters, only letters, digits, "
            "spaces, '-' and '_'; rename it or turn strict_audience_name off"
        )
    return name
