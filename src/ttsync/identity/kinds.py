"""Vectorized normalization per identifier kind, for printable-ASCII, non-blank values.

For printable ASCII (0x20-0x7e), Python's str.strip() removes exactly the spaces and str.lower()
is ASCII lowercasing, so these functions compute the same normalized text as the scalar rules.

Each function returns an Outcome whose positions index its input. What a function cannot decide
with certainty is deferred to the scalar reference (ttsync.identity.scalar).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from email_validator import SPECIAL_USE_DOMAIN_NAMES

from ttsync.identity import kernels
from ttsync.identity.arrowutil import Outcome, arange, fill_false
from ttsync.identity.reasons import Reason

# A strict subset of what email-validator accepts (ASCII dot-atom local part, LDH domain labels
# without `--`, a letter-only TLD): anything else with an `@` is checked by email-validator itself,
# except the shapes in EMAIL_SURELY_INVALID_RE, which it always rejects (consecutive dots, no dot
# after the `@`, a space, or a second `@`, in an unquoted address).
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~\-]"
EMAIL_FAST_RE = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]+$"
# Special-use domains (.local, .test...) are refused by email-validator; found with suffix checks.
EMAIL_SPECIAL_USE_SUFFIXES = tuple(f".{d}" for d in SPECIAL_USE_DOMAIN_NAMES)
# Addresses up to this length cannot break email-validator's length limits (local part <= 64,
# labels <= 63, address <= 254): longer ones, rare, are checked by email-validator itself.
EMAIL_FAST_MAX_LENGTH = 64
EMAIL_SURELY_INVALID_RE = r'^[^"\[\]]*(?:\.\.|@[^.]*$|\s|@.*@)[^"\[\]]*$'
MAID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAID_ALL_ZERO = "00000000-0000-0000-0000-000000000000"
SHA256_HEX_RE = r"^[0-9a-f]{64}$"
MD5_HEX_RE = r"^[0-9a-f]{32}$"
ANY_HEX_DIGEST_RE = r"^(?:[0-9a-f]{64}|[0-9a-f]{32})$"


def trim(values: pa.Array) -> pa.Array:
    """str.strip() for printable-ASCII values: spaces and tabs."""
    return pc.ascii_trim(values, " \t")


def trim_lower(values: pa.Array) -> pa.Array:
    """str.strip().lower() for printable-ASCII values."""
    return pc.ascii_lower(trim(values))


def emails(values: pa.Array) -> Outcome:
    """Trim, lowercase, syntax-check."""
    out = Outcome()
    idx = arange(len(values))
    email = trim_lower(values)
    # The same check compiled (regex, length, special-use TLDs), when the kernel is built.
    fast = kernels.email_fast(email, EMAIL_FAST_MAX_LENGTH, [s[1:] for s in EMAIL_SPECIAL_USE_SUFFIXES])
    if fast is None:
        fast = pc.and_(
            fill_false(pc.match_substring_regex(email, EMAIL_FAST_RE)),
            pc.less_equal(pc.binary_length(email), EMAIL_FAST_MAX_LENGTH),  # ASCII: bytes = characters
        )
        special = pc.ends_with(email, EMAIL_SPECIAL_USE_SUFFIXES[0])
        for suffix in EMAIL_SPECIAL_USE_SUFFIXES[1:]:
            special = pc.or_(special, pc.ends_with(email, suffix))
        fast = pc.and_(fast, pc.invert(special))
    out.ok(pc.filter(idx, fast), pc.filter(email, fast))
    rest_idx, rest = pc.filter(idx, pc.invert(fast)), pc.filter(email, pc.invert(fast))
    invalid = pc.or_(
        pc.invert(pc.match_substring(rest, "@")),  # email-validator: "must have an @-sign"
        fill_false(pc.match_substring_regex(rest, EMAIL_SURELY_INVALID_RE)),
    )
    for suffix in EMAIL_SPECIAL_USE_SUFFIXES:  # special-use domains are always refused
        invalid = pc.or_(invalid, fill_false(pc.ends_with(rest, suffix)))
    out.bad(pc.filter(rest_idx, invalid), Reason.INVALID_EMAIL)
    out.defer(pc.filter(rest_idx, pc.invert(invalid)))
    return out


def hash_fast_emails(values: pa.Array, writer: kernels.DigestWriter) -> pa.BooleanArray | None:
    """For raw values: whether each passes the email fast path of `emails` (printable ASCII that, trimmed
    and lowercased, matches EMAIL_FAST_RE within EMAIL_FAST_MAX_LENGTH, not a special-use domain); the
    SHA-256 of each passing value's normalized text is appended to `writer` in row order. None when the
    kernel cannot take the array (nothing appended): then use `emails`."""
    return writer.add_fast_emails(values, EMAIL_FAST_MAX_LENGTH, [s[1:] for s in EMAIL_SPECIAL_USE_SUFFIXES])


def maids(values: pa.Array) -> Outcome:
    """Trim, lowercase, UUID check, all-zero check. Fully decided here."""
    out = Outcome()
    idx = arange(len(values))
    maid = trim_lower(values)
    uuid = fill_false(pc.match_substring_regex(maid, MAID_RE))
    zero = pc.equal(maid, MAID_ALL_ZERO)
    good = pc.and_(uuid, pc.invert(zero))
    out.ok(pc.filter(idx, good), pc.filter(maid, good))
    out.bad(pc.filter(idx, pc.invert(uuid)), Reason.INVALID_MAID)
    out.bad(pc.filter(idx, zero), Reason.MAID_ALL_ZERO)
    return out


def external_ids(values: pa.Array) -> Outcome:
    """Trim (blank values were already rejected)."""
    out = Outcome()
    out.ok(arange(len(values)), trim(values))
    return out


def prehashed(values: pa.Array, algorithm: str) -> Outcome:
    """Lowercase and check 64 (sha256) or 32 (md5) hex digits; never hashed again."""
    out = Outcome()
    idx = arange(len(values))
    digest = trim_lower(values)
    good = fill_false(pc.match_substring_regex(digest, MD5_HEX_RE if algorithm == "md5" else SHA256_HEX_RE))
    out.ok(pc.filter(idx, good), pc.filter(digest, good))
    out.bad(
        pc.filter(idx, pc.invert(good)), Reason.NOT_MD5_HEX if algorithm == "md5" else Reason.NOT_SHA256_HEX
    )
    return out


def looks_hashed(values: pa.Array) -> pa.BooleanArray:
    """Values that are a hex digest (64 or 32 hex digits) once trimmed and lowercased."""
    return fill_false(pc.match_substring_regex(trim_lower(values), ANY_HEX_DIGEST_RE))
