"""Parity: the vectorized phone path must agree with libphonenumber on every row.

The corpus is generated deterministically from libphonenumber's own example numbers for every
region, written in mixed formats (national, international, E.164, `00`/IDD prefixes, punctuation)
plus mutations (digits dropped, added, changed) and invalid examples, and parsed with several
default regions. The reference is phonenumbers.parse + is_valid_number + format_number(E164).
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from typing import Any

import phonenumbers
import pyarrow as pa
import pytest

from ttsync.identity import ColumnSpec, Preparer, kernels
from ttsync.identity import phone_rules as pr
from ttsync.identity import values as values_module
from ttsync.identity.phone_fast import parse_phones, parse_phones_re2
from ttsync.identity.reasons import InvalidIdentifier
from ttsync.identity.scalar import normalize_phone

PNF = phonenumbers.PhoneNumberFormat
TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.VOIP,
]


def _mutations(text: str, rng: random.Random) -> list[str]:
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    out = []
    if digits:
        i = rng.choice(digits)
        out.append(text[:i] + text[i + 1 :])  # one digit dropped
        out.append(text[:i] + str(rng.randrange(10)) + text[i:])  # one digit added
        out.append(text[:i] + str(rng.randrange(10)) + text[i + 1 :])  # one digit changed
    return out


@cache
def corpus(seed: int = 20240603) -> list[tuple[str, str]]:
    """(value, default region) pairs: every region's examples in mixed formats and mutations."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    for region in regions:
        numbers = []
        for t in TYPES:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is not None:
                numbers.append(ex)
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            numbers.append(invalid)
        for num in numbers:
            national = phonenumbers.format_number(num, PNF.NATIONAL)
            intl = phonenumbers.format_number(num, PNF.INTERNATIONAL)
            e164 = phonenumbers.format_number(num, PNF.E164)
            nsn = phonenumbers.national_significant_number(num)
            texts = [
                national,
                intl,
                e164,
                "00" + e164[1:],
                "011 " + intl[1:],
                e164[1:],
                nsn,
                national.replace(" ", "-"),
                national.replace(" ", "."),
                intl.replace(" ", ""),
                f"({e164[:4]}) {e164[4:]}",
                " " + national + " ",
                "0" + nsn,
            ]
            for text in list(texts):
                texts += _mutations(text, rng)
            others = [rng.choice(regions) for _ in range(2)]
            for text in texts:
                for default in (region, "US", "GB", *others):
                    rows.append((text, default))
    # Shapes the fast path must defer, and junk.
    rows += [
        ("+1 213 373 4253 ext. 12", "US"),
        ("1-800-FLOWERS", "US"),
        ("tel:+1-213-373-4253", "US"),
        ("++44 20 7946 0018", "GB"),
        ("+0 123 456", "US"),
        ("+999 1234567", "US"),
        ("12", "US"),
        ("1", "DE"),
        ("0", "FR"),
        ("+", "US"),
        ("---", "US"),
        ("+44 20 7946 0018", "XX"),
        ("020 7946 0018", "XX"),
        ("２１３ ３７３ ４２５３", "US"),
        ("9" * 30, "US"),
        ("n/a", "US"),
        ("n/a", "XX"),
        ("+ABC", "US"),
        ("()", "DE"),
        ("5", "XX"),
        ("55", "XX"),
        ("5-5", "XX"),
        ("555", "XX"),
        ("555", "US"),
        ("+55", "US"),
        ("+1 55", "XX"),
        ("0049 30 1234567", "DE"),
        ("00 0 30 1234567", "DE"),
        ("0", "XX"),
    ]
    return rows


def _reference(value: str, region: str | None) -> tuple[str | None, str | None]:
    try:
        return normalize_phone(value, region), None
    except InvalidIdentifier as exc:
        return None, exc.reason.value


@cache
def corpus_references() -> tuple[tuple[str | None, str | None], ...]:
    """The scalar reference's answer for each corpus row (computed once per test process)."""
    return tuple(_reference(v, r) for v, r in corpus())


PATHS = {
    # The compiled kernel where it is built (else parse_phones takes the RE2 path itself).
    "compiled": parse_phones,
    # The RE2 path, which is what runs without the compiled kernels and for tables that do not compile.
    "re2": parse_phones_re2,
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_phone_fast_path_matches_libphonenumber_on_corpus(path: str) -> None:
    rows = corpus()
    regions_covered = {r for _, r in rows}
    assert len(regions_covered) >= 30
    # Rows are grouped by default region, as a real column with one region would be, and also run
    # once through the per-row region column path.
    values = pa.array([v for v, _ in rows])
    region_values = pa.array([r for _, r in rows])
    out = PATHS[path](values, None, region_values)
    ok_idx, ok_val = out.ok_arrays()
    bad_idx, bad_reason = out.bad_arrays()
    fallback = out.fallback_positions().to_pylist()
    fast: dict[int, tuple[str | None, str | None]] = {}
    for i, v in zip(ok_idx.to_pylist(), ok_val.to_pylist(), strict=True):
        fast[i] = (v, None)
    for i, r in zip(bad_idx.to_pylist(), bad_reason.to_pylist(), strict=True):
        assert i not in fast, "a row was decided twice"
        fast[i] = (None, r)
    assert not set(fallback) & set(fast), "a deferred row was also decided"
    assert len(fast) + len(fallback) == len(rows), "every row is decided or deferred exactly once"
    mismatches = []
    references = corpus_references()
    for i, got in fast.items():
        expected = references[i]
        if got != expected:
            mismatches.append((rows[i], got, expected))
    assert mismatches[:20] == []
    valid = sum(1 for got in fast.values() if got[0] is not None)
    invalid = len(fast) - valid
    assert valid > 1000
    assert invalid > 1000
    # The fast path must decide the common shapes itself, not hand everything to the fallback.
    assert len(fallback) / len(rows) < 0.05, f"fallback share {len(fallback) / len(rows):.3f}"


@pytest.mark.parametrize("region", ["US", "GB", "DE", "FR", "IN", "BR", "JP", "AR", "IT", "MX", "RU", "AU"])
def test_phone_fast_path_single_region_matches(region: str) -> None:
    references = corpus_references()
    picked = [i for i, (_, r) in enumerate(corpus()) if r == region]
    rows = [corpus()[i] for i in picked]
    values = pa.array([v for v, _ in rows])
    out = parse_phones(values, region)
    ok_idx, ok_val = out.ok_arrays()
    bad_idx, bad_reason = out.bad_arrays()
    for i, v in zip(ok_idx.to_pylist(), ok_val.to_pylist(), strict=True):
        assert (v, None) == references[picked[i]], rows[i]
    for i, r in zip(bad_idx.to_pylist(), bad_reason.to_pylist(), strict=True):
        assert (None, r) == references[picked[i]], rows[i]
    assert len(ok_idx) + len(bad_idx) + len(out.fallback_positions()) == len(rows)


def _unknown_code_numbers(rng: random.Random, count: int) -> list[str]:
    """`+` numbers whose first digits are no known country code (parse() retries them without the `+`),
    some starting with an international prefix of a region, written with punctuation."""
    known = {str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    unknown = [
        d
        for d in (f"{i}" for i in range(1000))
        if not any(d[:w] in known for w in (1, 2, 3)) and not d.startswith("0")
    ]
    heads = [*unknown, "0", "00", "011", "0011", "010", "001", "0044", "01149"]
    out = []
    for _ in range(count):
        digits = rng.choice(heads) + "".join(str(rng.randrange(10)) for _ in range(rng.randrange(2, 14)))
        cut = rng.randrange(1, len(digits))
        sep = rng.choice([" ", "-", "", ".", ") "])
        out.append(
            f"+{digits[:cut]}{sep}{digits[cut:]}" if sep != ") " else f"(+{digits[:cut]}) {digits[cut:]}"
        )
    return out


@pytest.mark.parametrize("region", [None, "US", "GB", "DE", "AU", "JP", "BR", "XX", "001", " us "])
def test_unknown_country_code_after_plus_matches(region: str | None) -> None:
    rows = _unknown_code_numbers(random.Random(7), 600)
    out = parse_phones(pa.array(rows), region)
    ok_idx, ok_val = out.ok_arrays()
    bad_idx, bad_reason = out.bad_arrays()
    decided = 0
    for i, v in zip(ok_idx.to_pylist(), ok_val.to_pylist(), strict=True):
        assert (v, None) == _reference(rows[i], region), rows[i]
        decided += 1
    for i, r in zip(bad_idx.to_pylist(), bad_reason.to_pylist(), strict=True):
        assert (None, r) == _reference(rows[i], region), rows[i]
        decided += 1
    assert decided + len(out.fallback_positions()) == len(rows)
    # Only numbers after the region's international prefix (or its own country code) are left over.
    assert decided > 0.6 * len(rows)


def _widen(text: str, rng: random.Random) -> str:
    """Some or all ASCII digits of `text` written as full-width digits."""
    every = rng.random() < 0.5
    return "".join(
        chr(0xFF10 + int(c)) if c.isascii() and c.isdigit() and (every or rng.random() < 0.5) else c
        for c in text
    )


def test_full_width_digits_take_the_fast_path_with_parity(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    rows = [(_widen(v, rng), r) for v, r in corpus()[::29]]
    rows += [("\uff12" * 64, "US"), ("\uff12\uff11\uff13\t373 4253", "US"), ("\uff0b1 213 373 4253", "US")]
    spec = ColumnSpec("v", "phone", region_column="country")
    # A spy on the real scalar reference (not a stand-in): counts the rows the fast path left to it.
    calls: list[str] = []
    real = values_module.scalar_one

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(values_module, "scalar_one", counting)
    batch = pa.record_batch(
        {
            "row_key": [str(i) for i in range(len(rows))],
            "v": [v for v, _ in rows],
            "country": [r for _, r in rows],
        }
    )
    with Preparer([spec]) as preparer:
        out = preparer.process(batch)
    got: dict[str, tuple[str | None, str | None]] = {}
    for row in out.ids.to_pylist():
        got[row["row_key"]] = (row["hash"], None)
    for row in out.rejects.to_pylist():
        got[row["row_key"]] = (None, row["reason"])
    mismatches = []
    for i, (value, region) in enumerate(rows):
        e164, reason = _reference(value, region)
        expected = (hashlib.sha256(e164.encode()).hexdigest() if e164 else None, reason)
        if got.get(str(i)) != expected:
            mismatches.append((value, region, got.get(str(i)), expected))
    assert mismatches[:20] == []
    # Rows with only full-width digits and the fast path's punctuation are not left to the scalar reference
    # (beyond the shapes it defers in ASCII too); a tab, or a full-width plus, still are.
    assert len(calls) < 0.1 * len(rows)
    assert "\uff12\uff11\uff13\t373 4253" in calls
    assert "\uff0b1 213 373 4253" in calls


def test_full_width_digits_are_never_read_as_a_hex_digest() -> None:
    # An `auto` column read as raw checks for hex digests on the value as written: 64 full-width digits are
    # no digest (the scalar reference says invalid phone), even though their ASCII twin would be one.
    values = ["\uff12" * 64, "(213) 373-4253", "\uff12\uff11\uff13 373 4253"]
    spec = ColumnSpec("v", "phone", region="US", hash_state="auto")
    batch = pa.record_batch({"row_key": ["0", "1", "2"], "v": values})
    with Preparer([spec]) as preparer:
        out = preparer.process(batch)
    assert out.rejects.to_pylist() == [{"row_key": "0", "column": "v", "reason": "invalid_phone"}]
    assert _reference(values[0], "US") == (None, "invalid_phone")
    expected = hashlib.sha256(b"+12133734253").hexdigest()
    assert out.ids.column("hash").to_pylist() == [expected, expected]


def _decisions(out: Any) -> dict[int, tuple[str | None, str | None] | str]:
    got: dict[int, tuple[str | None, str | None] | str] = {}
    ok_idx, ok_val = out.ok_arrays()
    bad_idx, bad_reason = out.bad_arrays()
    got.update((i, (v, None)) for i, v in zip(ok_idx.to_pylist(), ok_val.to_pylist(), strict=True))
    got.update((i, (None, r)) for i, r in zip(bad_idx.to_pylist(), bad_reason.to_pylist(), strict=True))
    got.update((i, "deferred") for i in out.fallback_positions().to_pylist())
    return got


@pytest.mark.skipif(not kernels.phone_kernel_available(), reason="compiled kernels not built")
def test_compiled_path_builds_tables_on_first_sight_and_leaves_uncompiled_codes_to_re2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh process has no country code table yet: the kernel asks for the codes it meets, they are
    # built, and those rows decided again. A code whose patterns did not compile takes the RE2 path.
    rows = [(v, r) for v, r in corpus()[::7] if r in ("US", "GB", "DE", "JP", "BR")]
    fresh = [b"" if t is not None else None for t in pr.code_tables()]
    fresh[49] = pr.UNSUPPORTED  # Germany's patterns, as if they had not compiled
    monkeypatch.setattr(pr, "_CODE_TABLES", fresh)
    values = pa.array([v for v, _ in rows])
    region_values = pa.array([r for _, r in rows])
    got = _decisions(parse_phones(values, None, region_values))
    expected = _decisions(parse_phones_re2(values, None, region_values))
    assert got == expected
    assert sum(1 for g in got.values() if g != "deferred" and g[0] and g[0].startswith("+49")) > 10
    assert fresh[44] not in (b"", None, pr.UNSUPPORTED)  # built when first seen
    assert fresh[49] == pr.UNSUPPORTED
    assert b"" in fresh  # codes never seen in these rows are never built
