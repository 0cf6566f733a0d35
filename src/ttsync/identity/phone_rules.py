"""libphonenumber's own metadata, compiled into RE2 patterns the vectorized phone path can run.

Everything here is read from the installed `phonenumbers` package at first use, so the fast path
follows the same metadata version as the scalar reference it is checked against.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata

from ttsync.identity import phone_dfa


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


def _type_descs(meta: Any) -> list[Any]:
    """The descriptions _number_type_helper tries after the general one (entries may be None)."""
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
    return type_descs


def _compile(name: str, meta: Any) -> Rules:
    types = [d for d in (_desc(x) for x in _type_descs(meta)) if d is not None]
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


# Tables of the compiled phone kernel (_kernels.c, phone section; layout described there).
REGION_MAGIC = 0x50485231
CODE_MAGIC = 0x50484331
REGION_HEADER = 34
UNSUPPORTED = b"-"  # a country code whose patterns did not compile: its rows take the RE2 path
ALL_LENGTHS = -1  # every bit of the lengths mask


def _lengths_mask(desc: Any) -> int:
    if len(desc.possible_length) == 0:
        return ALL_LENGTHS
    mask = 0
    for n in desc.possible_length:
        if 0 <= n < 31:
            mask |= 1 << n
    return mask


def _region_words(meta: Any) -> array[int]:
    """One region's table: header, then its automata (raises phone_dfa.Unsupported)."""
    descs = [d for d in _type_descs(meta) if d is not None and d.national_number_pattern]
    words = array("i", [0] * (REGION_HEADER + 2 * len(descs)))

    def add(automaton: array[int]) -> int:
        offset = len(words)
        words.extend(automaton)
        return offset

    general = meta.general_desc
    has_general = general is not None and bool(general.national_number_pattern)
    words[0] = REGION_MAGIC
    words[1] = int(meta.country_code)
    words[2] = 1 if meta.national_prefix_transform_rule else 0
    words[3] = len(descs)
    words[4] = _lengths_mask(general) if has_general else 0
    words[5] = add(phone_dfa.full_match(general.national_number_pattern)) if has_general else 0
    words[6] = add(phone_dfa.prefix_match(meta.international_prefix)) if meta.international_prefix else 0
    npfp = meta.national_prefix_for_parsing
    words[7] = add(phone_dfa.prefix_match(npfp)) if npfp else 0
    words[8] = add(phone_dfa.prefix_match(meta.leading_digits)) if meta.leading_digits else 0
    for n in range(MAX_DIGITS + 1):
        words[9 + n] = int(pnu._test_number_length("9" * n, meta))
    for t, desc in enumerate(descs):
        words[REGION_HEADER + 2 * t] = _lengths_mask(desc)
        words[REGION_HEADER + 2 * t + 1] = add(phone_dfa.full_match(desc.national_number_pattern))
    return words


def _metadata(region: str) -> Any:
    return PhoneMetadata.metadata_for_region(region)


@cache
def _region_words_cached(region: str) -> array[int] | None:
    meta = _metadata(region)
    try:
        return _region_words(meta)
    except phone_dfa.Unsupported:
        return None


@cache
def region_table(region: str) -> bytes | None:
    """The kernel's table of a supported region, or None if a pattern did not compile (use RE2)."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    words = _region_words_cached(region)
    return words.tobytes() if words is not None else None


def _code_table(country_code: int) -> bytes:
    """The kernel's table of a country code: the region parse() reads its numbers with, then the
    regions is_valid_number tries (validity_chain's order)."""
    main = pnu.region_code_for_country_code(country_code)
    parts: list[array[int] | None]
    if main == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        try:
            nongeo = _region_words(PhoneMetadata.metadata_for_nongeo_region(country_code))
        except phone_dfa.Unsupported:
            return UNSUPPORTED
        parts = [nongeo, nongeo]
    else:
        chain = [r for r in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()) if _metadata(r)]
        parts = [_region_words_cached(main), *(_region_words_cached(r) for r in chain)]
    if any(p is None for p in parts):
        return UNSUPPORTED
    header = array("i", [CODE_MAGIC, len(parts) - 1, *([0] * len(parts))])
    offsets: dict[int, int] = {}  # a region listed twice (the parsing region is in the chain) is stored once
    body = array("i")
    for k, part in enumerate(parts):
        assert part is not None
        if id(part) not in offsets:
            offsets[id(part)] = len(header) + len(body)
            body.extend(part)
        header[2 + k] = offsets[id(part)]
    return (header + body).tobytes()


_CODE_TABLES: list[bytes | None] = [
    b"" if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE else None for cc in range(1000)
]


def code_tables(needed: Iterable[int] = ()) -> tuple[bytes | None, ...]:
    """The kernel's country code tables, by code: None for an unknown code, b"" for one not built yet;
    the `needed` codes are built first (each once per process, on first sight)."""
    for cc in needed:
        if _CODE_TABLES[cc] == b"":
            _CODE_TABLES[cc] = _code_table(cc)
    return tuple(_CODE_TABLES)


@cache
def kernel_params(plus_defer: bool) -> bytes:
    """The kernel's scalar parameters: a length below which national numbers are invalid, the length
    results that keep the national prefix (a mask), TOO_LONG's value, whether `+` numbers with an unknown
    code are deferred."""
    keep = 0
    for result in KEEP_PREFIX_RESULTS:
        keep |= 1 << result
    # 0: the kernel walks short numbers through the automata like any other (none can be valid, and the
    # walk costs less than loading every region's metadata to find min_valid_length()).
    return array("i", [0, keep, TOO_LONG_RESULT, int(plus_defer)]).tobytes()
