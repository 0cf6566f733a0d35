"""libphonenumber's own metadata, compiled into RE2 patterns the vectorized phone path can run.

Everything here is read from the installed `phonenumbers` package at first use, so the fast path
follows the same metadata version as the scalar reference it is checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata


@dataclass(frozen=True)
class Desc:
    """One number description: an anchored pattern and the lengths it allows (None: any)."""

    pattern: str
    lengths: frozenset[int] | None


@dataclass(frozen=True)
class Rules:
    """What the fast path needs from one region's (or non-geographic entity's) metadata."""

    name: str
    country_code: int
    idd: str | None  # anchored prefix pattern of the international dialling prefix
    national_prefix: str | None  # anchored prefix pattern of national_prefix_for_parsing
    has_transform: bool  # national prefix rewriting with groups: left to the scalar fallback
    general: Desc | None
    types: tuple[Desc, ...]  # the descriptions _number_type_helper tries after the general one
    leading_digits: str | None  # anchored prefix pattern used to pick a region inside a country code
    # _test_number_length(number, metadata) for each length 0..MAX_DIGITS
    length_result: tuple[int, ...]


MAX_DIGITS = 24


def _anchored_full(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _anchored_prefix(pattern: str) -> str:
    return f"^(?:{pattern})"


def _desc(desc: Any) -> Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length) if len(desc.possible_length) > 0 else None
    return Desc(_anchored_full(desc.national_number_pattern), lengths)


def _compile(name: str, meta: Any) -> Rules:
    # Fixed-line and mobile come first: they are by far the most common types, so most rows are
    # decided after one or two patterns. The order does not change "known or not", which is all
    # validity needs.
    type_descs = [meta.fixed_line]
    if not meta.same_mobile_and_fixed_line_pattern:
        type_descs.append(meta.mobile)
    type_descs += [
        meta.premium_rate,
        meta.toll_free,
        meta.shared_cost,
        meta.voip,
        meta.personal_number,
        meta.pager,
        meta.uan,
        meta.voicemail,
    ]
    types = [d for d in (_desc(x) for x in type_descs) if d is not None]
    npfp = meta.national_prefix_for_parsing
    has_transform = bool(meta.national_prefix_transform_rule)
    if npfp and not has_transform:
        # Capturing groups only carry the carrier code, which E.164 drops; RE2 through Arrow
        # rejects unnamed groups in some kernels, so make them non-capturing.
        npfp = re.sub(r"\((?!\?)", "(?:", npfp)
    length_result = tuple(int(pnu._test_number_length("9" * n, meta)) for n in range(MAX_DIGITS + 1))
    return Rules(
        name=name,
        country_code=int(meta.country_code),
        idd=_anchored_prefix(meta.international_prefix) if meta.international_prefix else None,
        national_prefix=_anchored_prefix(npfp) if npfp else None,
        has_transform=has_transform,
        general=_desc(meta.general_desc),
        types=tuple(types),
        leading_digits=_anchored_prefix(meta.leading_digits) if meta.leading_digits else None,
        length_result=length_result,
    )


@cache
def region_rules(region: str) -> Rules | None:
    """Rules of a region code (None if libphonenumber does not know it)."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    return _compile(region, PhoneMetadata.metadata_for_region(region))


@cache
def country_code_rules(country_code: int) -> Rules:
    """Rules parse() uses after extracting `country_code`: its main region, or the non-geo entity."""
    main = pnu.region_code_for_country_code(country_code)
    if main == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return _compile(f"+{country_code}", PhoneMetadata.metadata_for_nongeo_region(country_code))
    rules = region_rules(main)
    assert rules is not None
    return rules


@cache
def validity_chain(country_code: int) -> tuple[Rules, ...]:
    """The regions is_valid_number tries, in order, for a number with this country code."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if tuple(regions) == (phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY,):
        return (country_code_rules(country_code),)
    chain = [region_rules(r) for r in regions]
    return tuple(r for r in chain if r is not None)


@cache
def country_codes() -> frozenset[str]:
    """Every country calling code libphonenumber knows, as digit strings."""
    return frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@cache
def min_valid_length() -> int:
    """The shortest national number any number type of any region allows (4 in current metadata).

    A number with fewer digits in total can never be valid, whatever parse() does with it.
    """
    lengths = [4]
    for region in phonenumbers.SUPPORTED_REGIONS:
        rules = region_rules(region)
        assert rules is not None
        for desc in (rules.general, *rules.types):
            lengths.append(min(desc.lengths) if desc is not None and desc.lengths else 0)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        rules = country_code_rules(code)
        for desc in (rules.general, *rules.types):
            lengths.append(min(desc.lengths) if desc is not None and desc.lengths else 0)
    return max(1, min(lengths))


# Result codes of _test_number_length that make parse() keep the national prefix (ref: parse()).
KEEP_PREFIX_RESULTS = frozenset(
    {
        int(pnu.ValidationResult.TOO_SHORT),
        int(pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY),
        int(pnu.ValidationResult.INVALID_LENGTH),
    }
)
TOO_LONG_RESULT = int(pnu.ValidationResult.TOO_LONG)
MAX_NSN_LENGTH = int(pnu._MAX_LENGTH_FOR_NSN)
MIN_NSN_LENGTH = int(pnu._MIN_LENGTH_FOR_NSN)
