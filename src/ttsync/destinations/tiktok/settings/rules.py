"""TikTok's naming rules and where its API lives: audience-name length, id format, the base URL.

No I/O: the process environment (for `$TTSYNC_SANDBOX_URL`) is an argument, given by `ttsync.app`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

from ttsync.config.common import Environment
from ttsync.config.models import Credential, Destination
from ttsync.destinations.tiktok.client import PRODUCTION_BASE_URL
from ttsync.errors import ConfigError

SANDBOX_URL_ENV = "TTSYNC_SANDBOX_URL"

# ref §2.1: Segment API names longer than 70 characters are cut to 67 characters plus "...".
AUDIENCE_NAME_MAX = 70
AUDIENCE_NAME_CUT = 67
_STRICT_NAME = re.compile(r"^[A-Za-z0-9 _-]{10,70}$")
_DIGITS = re.compile(r"^[0-9]{1,32}$")


def check_digits(value: str) -> str:
    """A TikTok id (advertiser, event set): a string of digits."""
    if not _DIGITS.match(value):
        raise ValueError(
            "TikTok ids are strings of digits, for example '7654321098765432109'; "
            "quote them in YAML so they stay strings"
        )
    return value


DigitsId = Annotated[str, AfterValidator(check_digits)]


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


def audience_name_problem(name: str) -> str | None:
    """Why a campaign's audience name cannot be used (too long for TikTok), or None when it can."""
    if len(name) <= AUDIENCE_NAME_MAX:
        return None
    return (
        f"the audience name {name!r} has {len(name)} characters; TikTok allows "
        f"{AUDIENCE_NAME_MAX}: shorten the campaign or group name or the audience_name_template"
    )


def check_strict_audience_name(name: str) -> str:
    """Enforce the optional strict audience-name rule: 10-70 letters, digits, spaces, '-' and '_'."""
    if not _STRICT_NAME.match(name):
        raise ValueError(
            "with strict_audience_name, an audience name has 10 to 70 characters, only letters, digits, "
            "spaces, '-' and '_'; rename it or turn strict_audience_name off"
        )
    return name


def resolve_base_url(
    environment: Environment, *sandbox_candidates: str | None, environ: Mapping[str, str]
) -> str:
    """Production is TikTok (ref §1); sandbox is the first configured emulator URL, else `$TTSYNC_SANDBOX_URL`
    of `environ`."""
    if environment == "production":
        return PRODUCTION_BASE_URL
    for candidate in (*sandbox_candidates, environ.get(SANDBOX_URL_ENV)):
        if candidate:
            return candidate if candidate.endswith("/") else candidate + "/"
    raise ConfigError(
        "the sandbox environment needs the emulator's URL: set `sandbox_base_url` on the credential or "
        f"destination, or export {SANDBOX_URL_ENV} (for example http://127.0.0.1:8765/open_api/v1.3/ "
        "after `ttsync emulator serve`)"
    )


def credential_base_url(credential: Credential, environ: Mapping[str, str]) -> str:
    """The API base URL a credential talks to (see `resolve_base_url`)."""
    return resolve_base_url(credential.environment, credential.sandbox_base_url, environ=environ)


def destination_base_url(destination: Destination, credential: Credential, environ: Mapping[str, str]) -> str:
    """The API base URL of a destination: TikTok for production; the emulator URL for sandbox."""
    return resolve_base_url(
        destination.environment, destination.sandbox_base_url, credential.sandbox_base_url, environ=environ
    )
