"""The automata the compiled phone kernel walks must accept exactly what `re` accepts.

Every pattern of libphonenumber's metadata (number descriptions: whole-string matches; international
prefixes, national prefixes and leading digits: where re.match ends) is compiled with phone_dfa and
checked against `re` on digit strings near the pattern's own examples and on random digit strings.
"""

from __future__ import annotations

import random
import re
from array import array
from typing import Any

import phonenumbers
import pyarrow as pa
import pytest
from phonenumbers.phonemetadata import PhoneMetadata

from ttsync.identity import kernels, phone_dfa
from ttsync.identity import phone_rules as pr

DESC_NAMES = [
    "general_desc",
    "fixed_line",
    "mobile",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
]


def _metadata() -> list[Any]:
    metas = [PhoneMetadata.metadata_for_region(r) for r in sorted(phonenumbers.SUPPORTED_REGIONS)]
    metas += [
        PhoneMetadata.metadata_for_nongeo_region(c)
        for c in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    ]
    return metas


def _near(example: str, rng: random.Random) -> list[str]:
    """The example, its prefixes, and one digit dropped, added or changed."""
    out = [example[:k] for k in range(len(example) + 1)]
    if example:
        i = rng.randrange(len(example))
        out += [
            example[:i] + example[i + 1 :],
            example[:i] + str(rng.randrange(10)) + example[i:],
            example[:i] + str(rng.randrange(10)) + example[i + 1 :],
        ]
    return out


def _random_digits(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 18))) for _ in range(count)]


def test_full_match_automata_accept_what_re_accepts() -> None:
    rng = random.Random(3)
    checked = 0
    for meta in _metadata():
        for name in DESC_NAMES:
            desc = getattr(meta, name)
            if desc is None or not desc.national_number_pattern:
                continue
            pattern = desc.national_number_pattern
            table = phone_dfa.full_match(pattern)
            regex = re.compile(f"(?:{pattern})\\Z")
            samples = _random_digits(rng, 20)
            if desc.example_number:
                samples += _near(desc.example_number, rng)
            for digits in samples:
                assert phone_dfa.run_full(table, digits) == bool(regex.match(digits)), (pattern, digits)
                checked += 1
    assert checked > 20_000


def test_prefix_automata_end_where_re_match_ends() -> None:
    rng = random.Random(4)
    checked = 0
    for meta in _metadata():
        for name in ("international_prefix", "national_prefix_for_parsing", "leading_digits"):
            pattern = getattr(meta, name)
            if not pattern:
                continue
            table = phone_dfa.prefix_match(pattern)
            regex = re.compile(pattern)
            examples = [
                d.example_number for d in (getattr(meta, n) for n in DESC_NAMES) if d and d.example_number
            ]
            samples = _random_digits(rng, 40)
            for example in examples[:3]:
                samples += [p + example for p in ("", "0", "00", "011", "1", "15", "90")]
            for digits in samples:
                found = regex.match(digits)
                assert phone_dfa.run_prefix(table, digits) == (found.end() if found else None), (
                    pattern,
                    digits,
                )
                checked += 1
    assert checked > 10_000


def test_leftmost_first_alternatives_and_end_anchors() -> None:
    # Backtracking semantics: the first alternative that matches wins, not the longest; `$` only at the end.
    cases = [
        ("0|00", "0012", 1),
        ("00|0", "0012", 2),
        ("(?:0(?:1)?)", "012", 2),
        ("(?:0(?:1)??)", "012", 1),
        ("([2-7]\\d{2})$|1", "1234", 1),
        ("([2-7]\\d{2})$|1", "234", 3),
        ("([2-7]\\d{2})$|1", "2345", None),
    ]
    for pattern, digits, end in cases:
        assert phone_dfa.run_prefix(phone_dfa.prefix_match(pattern), digits) == end, (pattern, digits)
        found = re.match(pattern, digits)
        assert (found.end() if found else None) == end


def test_unsupported_syntax_is_refused() -> None:
    for pattern in ("(?=1)2", "(1)\\1", "\\s", "(?i:1)"):
        with pytest.raises(phone_dfa.Unsupported):
            phone_dfa.full_match(pattern)


@pytest.mark.skipif(not kernels.phone_kernel_available(), reason="compiled kernels not built")
def test_kernel_refuses_malformed_tables() -> None:
    values = pa.array(["(213) 373-4253"])
    params = pr.kernel_params(False)
    home = pr.region_table("US")
    assert home is not None
    codes = list(pr.code_tables([1]))
    assert kernels.phone_e164(values, home, tuple(codes), params) is not None
    with pytest.raises(ValueError, match="default region table"):
        kernels.phone_e164(values, home[:200], tuple(codes), params)  # truncated region table
    codes_bad = list(codes)
    codes_bad[1] = b"\x00" * 64  # wrong magic
    with pytest.raises(ValueError, match="country code 1"):
        kernels.phone_e164(values, home, tuple(codes_bad), params)
    words = array("i")
    words.frombytes(codes[1] or b"")
    region = words[2]  # the parsing region's offset
    general = region + words[region + 5]  # its general description's automaton
    words[general + 2] = 10**6  # a transition past the last state
    codes_bad[1] = words.tobytes()
    with pytest.raises(ValueError, match="country code 1"):
        kernels.phone_e164(values, home, tuple(codes_bad), params)
    with pytest.raises(ValueError, match="1000 entries"):
        kernels.phone_e164(values, home, tuple(codes[:10]), params)
