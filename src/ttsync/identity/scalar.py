"""The scalar reference: one value in, one normalized identifier (or a reason) out.

These functions define the rules. The vectorized path (`ttsync.identity.prepare`) must give the same
answer for every value; where it cannot be sure it calls these functions.
"""

from __future__ import annotations

import hashlib
import re
import traceback

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ttsync.identity.reasons import InvalidIdentifier, Reason
from ttsync.identity.spec import KINDS, PhoneFormat

MAID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAID_ALL_ZERO = "00000000-0000-0000-0000-000000000000"
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
MD5_HEX_RE = re.compile(r"[0-9a-f]{32}")


def normalize_email(value: str) -> str:
    """Trim, lowercase and syntax-check an email address (email-validator, no DNS)."""
    email = value.strip().lower()
    if not email:
        raise InvalidIdentifier("email", Reason.EMPTY)
    valid = True
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        traceback.clear_frames(exc.__traceback__)
        valid = False
    if not valid:
        raise InvalidIdentifier("email", Reason.INVALID_EMAIL)
    return email


def normalize_region(region: str | None) -> str | None:
    """Canonical form of a region code: trimmed, upper-case, None when blank."""
    if region is None:
        return None
    region = region.strip().upper()
    return region or None


def normalize_phone(value: str, region: str | None = None, phone_format: PhoneFormat = "e164") -> str:
    """Parse a phone number with libphonenumber's rules and return it as `+E164` (or digits only).

    A number written with `+` or an international prefix keeps its own country; other numbers are
    read in `region`. Numbers libphonenumber cannot parse or does not consider valid are rejected.
    """
    if not value.strip():
        raise InvalidIdentifier("phone", Reason.EMPTY)
    region = normalize_region(region)
    error_type = None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        error_type = exc.error_type
        # parse() keeps the exception in one of its locals when it retries after a `+`: a reference
        # cycle through the traceback's frames, whose callers hold whole Arrow batches until the
        # garbage collector runs. Clearing the frames breaks it.
        traceback.clear_frames(exc.__traceback__)
    if error_type is not None:
        if error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and (
            region is None or region not in phonenumbers.SUPPORTED_REGIONS
        ):
            raise InvalidIdentifier("phone", Reason.PHONE_REGION_UNKNOWN)
        raise InvalidIdentifier("phone", Reason.INVALID_PHONE)
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone", Reason.INVALID_PHONE)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164[1:] if phone_format == "digits" else e164


def normalize_maid(kind: str, value: str) -> str:
    """Trim and lowercase a mobile advertising id; it must be a UUID and not the all-zero id."""
    maid = value.strip().lower()
    if not maid:
        raise InvalidIdentifier(kind, Reason.EMPTY)
    if not MAID_RE.fullmatch(maid):
        raise InvalidIdentifier(kind, Reason.INVALID_MAID)
    if maid == MAID_ALL_ZERO:
        # Limited ad tracking: the device opted out, and every such device shares this id.
        raise InvalidIdentifier(kind, Reason.MAID_ALL_ZERO)
    return maid


def normalize_external_id(value: str) -> str:
    """Trim an external id. Case is kept: TikTok's rules do not fold it (ref §6.1)."""
    external_id = value.strip()
    if not external_id:
        raise InvalidIdentifier("external_id", Reason.EMPTY)
    return external_id


def check_prehashed(kind: str, value: str, algorithm: str) -> str:
    """Lowercase an already-hashed value and check it is 64 (sha256) or 32 (md5) hex digits."""
    digest = value.strip().lower()
    if not digest:
        raise InvalidIdentifier(kind, Reason.EMPTY)
    if algorithm == "md5":
        if not MD5_HEX_RE.fullmatch(digest):
            raise InvalidIdentifier(kind, Reason.NOT_MD5_HEX)
    elif not SHA256_HEX_RE.fullmatch(digest):
        raise InvalidIdentifier(kind, Reason.NOT_SHA256_HEX)
    return digest


def normalize(kind: str, value: str, *, region: str | None = None, phone_format: PhoneFormat = "e164") -> str:
    """Normalize one raw value of `kind` ("email", "phone", "idfa", "aaid", "external_id").

    Raises InvalidIdentifier (with `.reason`) when the value cannot be used.
    """
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, region, phone_format)
    if kind in ("idfa", "aaid"):
        return normalize_maid(kind, value)
    if kind == "external_id":
        return normalize_external_id(value)
    raise ValueError(f"unknown identifier kind {kind!r}; expected one of {', '.join(KINDS)}")


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of `text`, as lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def md5_hex(text: str) -> str:
    """MD5 of the UTF-8 bytes of `text`, as lowercase hex (mobile ids only)."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def hash_identifier(
    kind: str, value: str, *, region: str | None = None, phone_format: PhoneFormat = "e164"
) -> str:
    """Normalize one raw value and return its SHA-256 as lowercase hex (what TikTok matches)."""
    return sha256_hex(normalize(kind, value, region=region, phone_format=phone_format))
