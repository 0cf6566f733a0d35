"""Business errors of the emulated API: raised by handlers, turned into the HTTP 200 envelope (ref §1, §5.1)."""

from __future__ import annotations

from typing import Final

OK: Final = 0
NO_PERMISSION: Final = 40001
PARAM_ERROR: Final = 40002
NOT_FOUND: Final = 40007
TOO_MANY_IDS: Final = 40011
PII_NOT_HASHED: Final = 40062
RATE_LIMITED: Final = 40100
INVALID_AUTH_PARAMS: Final = 40101
TOKEN_EXPIRED: Final = 40102
REFRESH_TOKEN_EXPIRED: Final = 40103
TOKEN_EMPTY: Final = 40104
TOKEN_INVALID: Final = 40105
INVALID_REFRESH_TOKEN: Final = 40107
INVALID_GRANT_TYPE: Final = 40108
INVALID_AUTH_CODE: Final = 40110
APP_MISMATCH: Final = 40113
TASK_NOT_READY: Final = 40201
ADVERTISER_NOT_FOUND: Final = 40300
FILE_SIGNATURE_MISMATCH: Final = 40900
FILE_TYPE_UNSUPPORTED: Final = 40908
CALCULATE_TYPE_UNSUPPORTED: Final = 40909
SYSTEM_ERROR: Final = 50000

# Messages TikTok is known to send for codes the fault injector can produce (ref §5.1).
CANNED_MESSAGES: Final[dict[int, str]] = {
    40100: "Too many requests. Please retry in some time.",
    40133: "Advertiser's QPS reaches QPS limit for current path. Please retry in some time.",
    40200: "Task error.",
    40201: "Task is not ready.",
    40202: "Write or update entity conflict. Retry may resolve this issue.",
    40700: "Internal service validation error.",
    50000: "System error",
    50002: "Error processing request on TikTok side. Please see error message for details.",
    60001: "The service is under maintenance. Please retry later.",
}

# An error message, not a secret.
TOKEN_EMPTY_MESSAGE: Final = "Access token is null, you should set it in http header with key Access-Token."  # noqa: S105


class ApiError(Exception):
    """A non-zero envelope code with its message; never carries secrets."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def param_error(field: str, problem: str) -> ApiError:
    """40002 naming the exact field path, the way TikTok words it (``data.0.event_id: Not a valid string``)."""
    return ApiError(PARAM_ERROR, f"{field}: {problem}")
