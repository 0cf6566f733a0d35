"""TikTok's identifier names: the one table from a destination's user id types and identity's type names to
what TikTok's segment mappings, customer-file uploads and file headers take (ref §2.1, §2.4, §6.2, §6.3).

Identity names a hashed identifier `KIND_ALGORITHM` (`ttsync.identity.spec.id_schema_for`); the segment
mapping API takes those names as they are, the customer-file flow renames Android ids (AAID -> GAID).
"""

from __future__ import annotations

from typing import Final

from ttsync.destinations.tiktok.client.models.common import CalculateType

# id schema each user id type is sent as (ref §2.1 id_schema values); MD5 only when the input is MD5.
ID_SCHEMAS: Final = {
    "EMAIL": "EMAIL_SHA256",
    "PHONE": "PHONE_SHA256",
    "IDFA": "IDFA_SHA256",
    "AAID": "AAID_SHA256",
}
MD5_SCHEMAS: Final = {"IDFA": "IDFA_MD5", "AAID": "AAID_MD5"}

# id_schema (the identity stage's names) -> customer-file calculate_type (ref §2.4). The file flow names
# Android advertising ids GAID where the mapping API says AAID.
CALCULATE_TYPES: Final[dict[str, CalculateType]] = {
    "EMAIL_SHA256": "EMAIL_SHA256",
    "PHONE_SHA256": "PHONE_SHA256",
    "IDFA_SHA256": "IDFA_SHA256",
    "IDFA_MD5": "IDFA_MD5",
    "AAID_SHA256": "GAID_SHA256",
    "AAID_MD5": "GAID_MD5",
}
# Header line of each file. Email and phone files are named by their calculate_type; mobile ids use the
# MAID headers TikTok's customer-file pages list (ref §6.3). The calculate_type sent with the upload is what
# tells TikTok the type; the header only has to be one TikTok skips rather than reads as an identifier.
FILE_HEADERS: Final[dict[str, str]] = {
    "EMAIL_SHA256": "EMAIL_SHA256",
    "PHONE_SHA256": "PHONE_SHA256",
    "IDFA_SHA256": "MAID_SHA256",
    "IDFA_MD5": "MAID_MD5",
    "GAID_SHA256": "MAID_SHA256",
    "GAID_MD5": "MAID_MD5",
}
