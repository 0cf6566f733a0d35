"""The scalar email rule (`scalar.normalize_email`) with email-validator's domain work done once per domain.

What the vectorized rules defer (internationalized domains, non-ASCII local parts) goes to email-validator
one value at a time, and most of its time goes into the part after the @ (`idna`: UTS-46 mapping,
Punycode both ways). Domains repeat across a column, so `EmailDomains` keeps, per distinct domain, what
email-validator concluded about it, and decides `local@domain` from that plus the local part:

- email-validator splits such an address at its only @ whatever the domain holds, as long as the local
  part has no `"`, `<` or `@` (only those change how it splits, and nothing before the @ is read
  differently); it then checks the local part alone, the domain alone (`validate_email_domain_name`),
  and last the three lengths of `validate_email_length` (the address as given, normalized, and with the
  ASCII domain: each at most 254 UTF-8 bytes).
- So `local@domain` is valid exactly when `a@domain` is (the domain check; a one-character local part is
  the shortest there is, so a length `a@domain` fails every local part fails too), the local part is
  valid (an ASCII dot-atom always is; any other is checked by email-validator as `local@a.com`), and the
  three lengths, each the local part's form plus the domain's matching form, fit.

Anything else (a quote, `<`, several @, a local part over 64 bytes) goes to `scalar.normalize_email`
unchanged. tests/test_identity_email_domains.py holds this to the reference on generated addresses.
"""

from __future__ import annotations

import re
import threading
import traceback

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import EMAIL_MAX_LENGTH  # each form of the address, in UTF-8 bytes

from ttsync.identity.reasons import InvalidIdentifier, Reason
from ttsync.identity.scalar import normalize_email

# An ASCII dot-atom local part (RFC 5322 atext, lowercased): email-validator accepts it as it is.
ASCII_LOCAL_RE = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~\-]+)*")
MAX_LOCAL_BYTES = 64  # NFC grows UTF-8 at most 3x: 3 * 64 + len("@a.com") stays under the limit
REFERENCE_DOMAIN = "a.com"  # a domain email-validator accepts, to check a local part alone
DEFAULT_MAX_DOMAINS = 4096


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _validated(address: str) -> ValidatedEmail | None:
    """email-validator's result for an address (no DNS), or None if it refuses it."""
    try:
        return validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        traceback.clear_frames(exc.__traceback__)
        return None


class EmailDomains:
    """`normalize(value)`: the same result as `scalar.normalize_email(value)`, with each distinct domain's
    verdict computed once and kept (at most `max_domains`, the oldest dropped first). Thread-safe."""

    def __init__(self, max_domains: int = DEFAULT_MAX_DOMAINS) -> None:
        if max_domains < 1:
            raise ValueError("max_domains must be at least 1")
        self.max_domains = max_domains
        self._domains: dict[str, tuple[int, int, int] | None] = {}
        self._lock = threading.Lock()
        self._usable: bool | None = None  # whether REFERENCE_DOMAIN is accepted here (checked once)
        self.lookups = 0  # domain verdicts computed (not found in the cache): for tests

    def __len__(self) -> int:
        return len(self._domains)

    def normalize(self, value: str) -> str:
        """Trim, lowercase and check an address exactly as `scalar.normalize_email` does."""
        email = value.strip().lower()
        local, at, domain = email.partition("@")
        if (
            not at
            or not local
            or "@" in domain
            or "<" in domain
            or '"' in local
            or "<" in local
            or _utf8_len(local) > MAX_LOCAL_BYTES
            or not self._reference_usable()
        ):
            return normalize_email(value)
        domain_lengths = self._domain(domain)
        if domain_lengths is None:
            raise InvalidIdentifier("email", Reason.INVALID_EMAIL)
        if ASCII_LOCAL_RE.fullmatch(local):
            local_lengths = (len(local),) * 3  # accepted as it is: given, normalized and ASCII alike
        else:
            checked = _validated(f"{local}@{REFERENCE_DOMAIN}")
            if checked is None:
                raise InvalidIdentifier("email", Reason.INVALID_EMAIL)
            local_lengths = (
                _utf8_len(local),
                _utf8_len(checked.local_part),
                _utf8_len(checked.ascii_local_part or checked.local_part or ""),
            )
        # validate_email_length: the address as given, normalized, and with the ASCII domain.
        if any(a + 1 + b > EMAIL_MAX_LENGTH for a, b in zip(local_lengths, domain_lengths, strict=True)):
            raise InvalidIdentifier("email", Reason.INVALID_EMAIL)
        return email

    def _reference_usable(self) -> bool:
        if self._usable is None:
            self._usable = _validated(f"a@{REFERENCE_DOMAIN}") is not None
        return self._usable

    def _domain(self, domain: str) -> tuple[int, int, int] | None:
        """UTF-8 lengths of the domain as given, normalized and in ASCII (IDNA), or None if
        email-validator refuses `a@domain`."""
        with self._lock:
            if domain in self._domains:
                return self._domains[domain]
        checked = _validated(f"a@{domain}")
        verdict = None
        if checked is not None:
            verdict = (_utf8_len(domain), _utf8_len(checked.domain), _utf8_len(checked.ascii_domain))
        with self._lock:
            self.lookups += 1
            while len(self._domains) >= self.max_domains:
                del self._domains[next(iter(self._domains))]
            self._domains[domain] = verdict
        return verdict
