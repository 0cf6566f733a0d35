"""Vectorized phone parsing that reproduces libphonenumber's parse + is_valid_number + E.164.

The steps mirror `phonenumbers.parse` for inputs made only of digits, spaces, `()-./` and one
leading `+` (the shapes warehouses hold): strip the international prefix or `+`, find the country
code, strip the national prefix, check lengths, then validate against the region's number patterns.
Every branch uses libphonenumber's own metadata (see phone_rules). Inputs of any other shape, and
the few branches that need capture-group rewriting or parse()'s retry logic, are deferred to the
scalar reference, so the fast path never guesses.

Everything past the shape check is ASCII, so lengths are byte lengths (pc.binary_length, ~40x
cheaper than utf8_length). The shape check and digit extraction are one compiled pass
(kernels.phone_scan) when the kernels are built, else RE2 and literal replacements.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.identity import kernels
from ttsync.identity import phone_rules as pr
from ttsync.identity.arrowutil import Outcome, arange, concat, fill_false
from ttsync.identity.reasons import Reason
from ttsync.identity.scalar import normalize_region
from ttsync.identity.values import remap

# One optional `+` before the first digit; only punctuation libphonenumber ignores. Letters (vanity
# numbers), extensions (`x`, `#`, `;ext=`), tabs and non-ASCII go to the fallback.
SHAPE_RE = r"^[ ()./\-]*\+?[0-9 ()./\-]*$"
MIN_FAST_DIGITS = 4
MAX_FAST_DIGITS = pr.MAX_NSN_LENGTH
MAX_INPUT_LENGTH = 250  # parse() rejects longer strings before anything else


def _prefix(values: pa.Array, anchored: str) -> pa.BooleanArray:
    """Whether an anchored prefix pattern matches; a plain digit prefix is a cheap starts_with."""
    literal = anchored[len("^(?:") : -1]
    if literal.isdigit() and literal.isascii():
        return pc.starts_with(values, literal)
    return pc.match_substring_regex(values, anchored)


def _strip_prefix(values: pa.Array, anchored: str) -> pa.Array:
    """Remove the (matching) anchored prefix pattern from each value."""
    literal = anchored[len("^(?:") : -1]
    if literal.isdigit() and literal.isascii():
        return pc.utf8_slice_codeunits(values, len(literal))
    return pc.replace_substring_regex(values, anchored, "", max_replacements=1)


def _full(values: pa.Array, desc: pr.Desc | None) -> pa.BooleanArray:
    """_match_national_number: the pattern only, no length check."""
    if desc is None:
        return pa.repeat(pa.scalar(False), len(values))
    return pc.match_substring_regex(values, desc.pattern)


def _matches_desc(values: pa.Array, lengths: pa.Array, desc: pr.Desc | None) -> pa.BooleanArray:
    """_is_number_matching_desc: possible lengths, then the pattern."""
    if desc is None:
        return pa.repeat(pa.scalar(False), len(values))
    ok = _full(values, desc)
    if desc.lengths is not None:
        ok = pc.and_(ok, pc.is_in(lengths, value_set=pa.array(sorted(desc.lengths), pa.int32())))
    return ok


def _length_result(values: pa.Array, rules: pr.Rules) -> pa.Array:
    """_test_number_length(number, metadata) for each value, from the precomputed table."""
    lengths = pc.min_element_wise(pc.binary_length(values), pa.scalar(pr.MAX_DIGITS, pa.int32()))
    return pc.take(pa.array(rules.length_result, pa.int8()), lengths)


def _scatter(mask: pa.BooleanArray, sub: pa.BooleanArray) -> pa.BooleanArray:
    """A full-length mask: `sub` (one value per True of `mask`) at mask's True positions, else False."""
    return pc.replace_with_mask(pa.repeat(pa.scalar(False), len(mask)), mask, sub)


def _type_known(values: pa.Array, rules: pr.Rules) -> pa.BooleanArray:
    """_number_type_helper(number, metadata) != UNKNOWN."""
    n = len(values)
    if rules.general is None or n == 0:
        return pa.repeat(pa.scalar(False), n)
    lengths = pc.binary_length(values)
    candidates = _matches_desc(values, lengths, rules.general)
    known = pa.repeat(pa.scalar(False), n)
    for desc in rules.types:
        if not pc.any(candidates).as_py():
            break
        # Each type is only tried on the rows no earlier type matched.
        hit = _scatter(
            candidates, _matches_desc(pc.filter(values, candidates), pc.filter(lengths, candidates), desc)
        )
        known = pc.or_(known, hit)
        candidates = pc.and_(candidates, pc.invert(hit))
    return known


@cache
def _type_union(country_code: int) -> str | None:
    """One pattern matching everything any region after the first could call a known type."""
    patterns = [d.pattern for rules in pr.validity_chain(country_code)[1:] for d in rules.types]
    if not patterns:
        return None
    return "|".join(f"(?:{p})" for p in patterns)


def _valid(values: pa.Array, country_code: int) -> pa.BooleanArray:
    """is_valid_number for numbers of one country code: region_code_for_number, then its patterns."""
    chain = pr.validity_chain(country_code)
    if len(chain) == 1:
        return _type_known(values, chain[0])
    valid = pa.repeat(pa.scalar(False), len(values))
    undecided = pa.repeat(pa.scalar(True), len(values))
    for i, rules in enumerate(chain):
        if not pc.any(undecided).as_py():
            break
        if i == 1:
            # Rows the first region did not take can only be valid if some later region's type
            # pattern matches them: one pass over the union drops the rest before the long walk
            # (NANP has 25 regions).
            union = _type_union(country_code)
            if union is not None:
                sub = pc.filter(values, undecided)
                undecided = _scatter(undecided, pc.match_substring_regex(sub, union))
                if not pc.any(undecided).as_py():
                    break
        sub = pc.filter(values, undecided)
        known = _type_known(sub, rules)
        chosen = known
        if rules.leading_digits is not None:
            # A region whose leading digits match is chosen even if the number is invalid there.
            chosen = pc.or_(known, pc.match_substring_regex(sub, rules.leading_digits))
        valid = pc.or_(valid, _scatter(undecided, known))
        undecided = pc.and_(undecided, pc.invert(_scatter(undecided, chosen)))
    return valid


def _strip_national_prefix(values: pa.Array, rules: pr.Rules) -> tuple[pa.Array, pa.BooleanArray]:
    """_maybe_strip_national_prefix_carrier_code; returns (numbers, rows to defer)."""
    no_defer = pa.repeat(pa.scalar(False), len(values))
    if rules.national_prefix is None or len(values) == 0:
        return values, no_defer
    matched = _prefix(values, rules.national_prefix)
    if not pc.any(matched).as_py():
        return values, no_defer
    if rules.has_transform:
        # The prefix is rewritten with capture groups (e.g. Argentina's mobile 15): scalar path.
        return values, matched
    sub = pc.filter(values, matched)
    stripped = _strip_prefix(sub, rules.national_prefix)
    keep = pc.and_(_full(sub, rules.general), pc.invert(_full(stripped, rules.general)))
    return pc.replace_with_mask(values, matched, pc.if_else(keep, sub, stripped)), no_defer


def _finish(out: Outcome, idx: pa.Array, national: pa.Array, country_code: int, rules: pr.Rules) -> None:
    """The end of parse() after the country code is known, then is_valid_number and E.164."""
    if len(idx) == 0:
        return
    too_short = pc.less(pc.binary_length(national), pr.MIN_NSN_LENGTH)
    if pc.any(too_short).as_py():
        out.bad(pc.filter(idx, too_short), Reason.INVALID_PHONE)
        keep = pc.invert(too_short)
        idx, national = pc.filter(idx, keep), pc.filter(national, keep)
    stripped, defer = _strip_national_prefix(national, rules)
    if pc.any(defer).as_py():
        out.defer(pc.filter(idx, defer))
        keep = pc.invert(defer)
        idx, national, stripped = pc.filter(idx, keep), pc.filter(national, keep), pc.filter(stripped, keep)
    # parse() keeps the prefix when what remains is too short, local-only or of an impossible length.
    keep_prefix = pc.is_in(
        _length_result(stripped, rules), value_set=pa.array(sorted(pr.KEEP_PREFIX_RESULTS), pa.int8())
    )
    national = pc.if_else(keep_prefix, national, stripped)
    length = pc.binary_length(national)
    bad_length = pc.or_(pc.less(length, pr.MIN_NSN_LENGTH), pc.greater(length, pr.MAX_NSN_LENGTH))
    valid = pc.and_(pc.invert(bad_length), _valid(national, country_code))
    out.bad(pc.filter(idx, pc.invert(valid)), Reason.INVALID_PHONE)
    good = pc.filter(national, valid)
    out.ok(pc.filter(idx, valid), good, prefix=f"+{country_code}")


def _unknown_code_after_plus(out: Outcome, idx: pa.Array, digits: pa.Array, region: str | None) -> None:
    """`+` numbers whose country code libphonenumber does not know, read in the default `region`.

    parse() then strips the `+` and tries once more to find a country code: after the region's
    international prefix, or the region's own country code at the start (then a prefix and length
    check decide). Numbers that start with neither get no code, so parse() fails with
    INVALID_COUNTRY_CODE: an invalid phone, or an unknown region when there is no (supported) default
    region to read them in. The others are left to the scalar reference."""
    rules = pr.region_rules(region) if region else None
    if rules is None:
        out.bad(idx, Reason.PHONE_REGION_UNKNOWN)
        return
    retry = pc.starts_with(digits, str(rules.country_code))
    if rules.idd is not None:
        retry = pc.or_(retry, _prefix(digits, rules.idd))
    out.defer(pc.filter(idx, retry))
    out.bad(pc.filter(idx, pc.invert(retry)), Reason.INVALID_PHONE)


def _international(
    out: Outcome, idx: pa.Array, digits: pa.Array, from_plus: bool, plus_region: str | None = None
) -> None:
    """Numbers after `+` or an international prefix: extract the country code, then finish.

    plus_region: for `+` numbers, the default region they are read in when it is the same for every
    row (an unknown country code is then decided here); None with per-row regions (deferred)."""
    if len(idx) == 0:
        return
    short = pc.less_equal(pc.binary_length(digits), pr.MIN_NSN_LENGTH)
    if pc.any(short).as_py():
        out.bad(pc.filter(idx, short), Reason.INVALID_PHONE)  # TOO_SHORT_AFTER_IDD
        keep = pc.invert(short)
        idx, digits = pc.filter(idx, keep), pc.filter(digits, keep)
    known = pa.array(sorted(pr.country_codes()))
    code: pa.Array = pa.nulls(len(digits), pa.string())
    for width in (3, 2, 1):  # country codes are prefix-free; the shortest known prefix wins
        head = pc.utf8_slice_codeunits(digits, 0, width)
        code = pc.if_else(fill_false(pc.is_in(head, value_set=known)), head, code)
    missing = pc.is_null(code)
    if pc.any(missing).as_py():
        if from_plus and plus_region is None:
            out.defer(pc.filter(idx, missing))  # parse() retries without the plus: scalar path
        elif from_plus:
            _unknown_code_after_plus(out, pc.filter(idx, missing), pc.filter(digits, missing), plus_region)
        else:
            out.bad(pc.filter(idx, missing), Reason.INVALID_PHONE)
        keep = pc.invert(missing)
        idx, digits, code = pc.filter(idx, keep), pc.filter(digits, keep), pc.filter(code, keep)
    for cc_scalar in pc.unique(code).to_pylist():
        cc = str(cc_scalar)
        mask = pc.equal(code, cc)
        national = pc.utf8_slice_codeunits(pc.filter(digits, mask), len(cc))
        _finish(out, pc.filter(idx, mask), national, int(cc), pr.country_code_rules(int(cc)))


def _national(out: Outcome, idx: pa.Array, digits: pa.Array, region: str | None) -> tuple[pa.Array, pa.Array]:
    """Numbers without `+` read in `region`; returns (positions, digits) that had an IDD prefix."""
    rules = pr.region_rules(region) if region else None
    count = pc.binary_length(digits)
    if rules is None:
        # With fewer than 3 digits parse() may fail on viability before it looks at the region.
        tiny = pc.less(count, 3)
        out.defer(pc.filter(idx, tiny))
        out.bad(pc.filter(idx, pc.invert(tiny)), Reason.PHONE_REGION_UNKNOWN)
        return pa.array([], pa.int64()), pa.array([], pa.string())
    short = pc.less(count, pr.min_valid_length())
    if pc.any(short).as_py():
        out.bad(pc.filter(idx, short), Reason.INVALID_PHONE)  # too few digits to be valid anywhere
        keep = pc.invert(short)
        idx, digits = pc.filter(idx, keep), pc.filter(digits, keep)
    idd_idx: pa.Array = pa.array([], pa.int64())
    idd_digits: pa.Array = pa.array([], pa.string())
    if rules.idd is not None:
        has_idd = _prefix(digits, rules.idd)
        if pc.any(has_idd).as_py():
            sub = pc.filter(digits, has_idd)
            after = _strip_prefix(sub, rules.idd)
            # The prefix only counts when the next digit is not 0 (country codes never start with 0).
            is_idd = pc.invert(pc.starts_with(after, "0"))
            sub_idx = pc.filter(idx, has_idd)
            idd_idx, idd_digits = pc.filter(sub_idx, is_idd), pc.filter(after, is_idd)
            not_idd = pc.replace_with_mask(pc.invert(has_idd), has_idd, pc.invert(is_idd))
            idx, digits = pc.filter(idx, not_idd), pc.filter(digits, not_idd)
    # A national number that starts with the region's own country code (e.g. 4930... read in DE).
    code = str(rules.country_code)
    starts = pc.starts_with(digits, code)
    if pc.any(starts).as_py():
        full = pc.filter(digits, starts)
        rest, defer = _strip_national_prefix(pc.utf8_slice_codeunits(full, len(code)), rules)
        take_code = pc.or_(
            pc.and_(pc.invert(_full(full, rules.general)), _full(rest, rules.general)),
            pc.equal(_length_result(full, rules), pr.TOO_LONG_RESULT),
        )
        sub_idx = pc.filter(idx, starts)
        out.defer(pc.filter(sub_idx, defer))
        take_code = pc.and_(take_code, pc.invert(defer))
        _finish(
            out,
            pc.filter(sub_idx, take_code),
            pc.filter(rest, take_code),
            rules.country_code,
            pr.country_code_rules(rules.country_code),
        )
        stay = pc.replace_with_mask(
            pc.invert(starts), starts, pc.and_(pc.invert(take_code), pc.invert(defer))
        )
        idx, digits = pc.filter(idx, stay), pc.filter(digits, stay)
    _finish(out, idx, digits, rules.country_code, rules)
    return idd_idx, idd_digits


# Full-width digits (U+FF10..U+FF19), as CJK forms and spreadsheets write numbers: parse() reads every
# Unicode decimal digit as its ASCII digit, in its patterns and in its normalization alike.
FULLWIDTH_DIGITS = tuple(chr(0xFF10 + d) for d in range(10))


def narrow_digits(values: pa.Array, candidates: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray | None]:
    """(values with full-width digits written as ASCII digits at the candidate rows that become printable
    ASCII that way, a mask of those rows), or (values, None) when there are none.

    parse() gives a string and its ASCII-digit twin the same result (the same length in characters, and
    every regular expression it runs uses Unicode \\d), so these rows can take the fast path. A narrowed
    row always held a full-width digit: never blank, never a hex digest."""
    if not pc.any(candidates).as_py():
        return values, None
    narrowed = sub = pc.filter(values, candidates)
    for digit, wide in enumerate(FULLWIDTH_DIGITS):
        narrowed = pc.replace_substring(narrowed, wide, str(digit))
    ascii_now = pc.and_(
        fill_false(pc.ascii_is_printable(narrowed)),
        pc.not_equal(pc.binary_length(narrowed), pc.binary_length(sub)),
    )
    if not pc.any(ascii_now).as_py():
        return values, None
    mask = _scatter(candidates, ascii_now)
    # The narrowed rows appended after the values, and one take: half the cost of replace_with_mask on
    # a string column (a full copy either way).
    positions = np.arange(len(values))
    at = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    positions[at] = len(values) + np.arange(len(at))
    patched = pa.concat_arrays([values, pc.filter(narrowed, ascii_now).cast(values.type)])
    return patched.take(pa.array(positions)), mask


# Everything SHAPE_RE lets through besides the digits.
SHAPE_PUNCTUATION = " ()./-+"


def digits_only(values: pa.Array) -> pa.Array:
    """The decimal digits of values that match SHAPE_RE (all-digit values are left as they are).
    Arrow only: parse_phones uses the compiled kernels.phone_scan instead when it is built."""
    punctuated = pc.invert(fill_false(pc.ascii_is_decimal(values)))
    if not pc.any(punctuated).as_py():
        return values
    stripped = pc.filter(values, punctuated)
    # One literal replacement per punctuation character is ~1.5x cheaper than RE2's \D+ replace.
    for char in SHAPE_PUNCTUATION:
        stripped = pc.replace_substring(stripped, char, "")
    return pc.replace_with_mask(values, punctuated, stripped)


def parse_phones(values: pa.Array, region: str | None, region_values: pa.Array | None = None) -> Outcome:
    """Parse printable-ASCII, non-blank phone strings. Positions in the Outcome index `values`.

    region: the default region; region_values: a per-row region (nulls fall back to `region`).
    The compiled kernel decides the rows when it is built (same results); else, and for regions whose
    patterns it cannot compile, RE2 and Arrow do (parse_phones_re2).
    """
    if kernels.phone_kernel_available():
        out = _parse_compiled(values, region, region_values)
        if out is not None:
            return out
    return parse_phones_re2(values, region, region_values)


# Status codes of kernels.phone_e164 (see _kernels.c's phone section).
_OK, _INVALID, _REGION_UNKNOWN, _DEFER, _NEED, _RE2 = range(6)


def _positions(status: np.ndarray, code: int) -> pa.Array:
    return pa.array(np.flatnonzero(status == code))


def _region_groups(region_values: pa.Array, region: str | None) -> list[tuple[str | None, pa.Array]]:
    """(normalized region, positions) of each distinct per-row region; blank and null rows take the
    default `region` (None when there is none)."""
    rows_region = pc.utf8_upper(pc.utf8_trim_whitespace(region_values))
    rows_region = pc.if_else(pc.equal(rows_region, ""), pa.scalar(None, pa.string()), rows_region)
    default = normalize_region(region)
    if default is not None:
        rows_region = pc.fill_null(rows_region, default)
    encoded = pc.dictionary_encode(rows_region)
    indices = pc.fill_null(encoded.indices, -1).to_numpy()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(indices, kind="stable")
    bounds = np.flatnonzero(np.diff(indices[order])) + 1
    groups = []
    for chunk in np.split(order, bounds):
        if len(chunk):
            code = int(indices[chunk[0]])
            groups.append((None if code < 0 else str(names[code]), pa.array(chunk)))
    return groups


def _decide_compiled(values: pa.Array, home: str | None, plus_defer: bool) -> tuple[Outcome, pa.Array] | None:
    """(outcome, positions left to the RE2 path) of one group of rows read in region `home`, or None when
    the kernel cannot take them."""
    home_table = None
    codes_needed = []
    if home is not None and home in phonenumbers.SUPPORTED_REGIONS:
        home_table = pr.region_table(home)
        if home_table is None:
            return None  # a pattern of the region did not compile
        codes_needed.append(phonenumbers.country_code_for_region(home))
    params = pr.kernel_params(plus_defer)
    result = kernels.phone_e164(values, home_table, pr.code_tables(codes_needed), params)
    if result is None:
        return None
    status, numbers, need = result
    out = Outcome()
    # Values are country code + national number: the `+` goes on as the prefix (dropped for digits).
    out.ok(_positions(status, _OK), numbers, prefix="+")
    out.bad(_positions(status, _INVALID), Reason.INVALID_PHONE)
    out.bad(_positions(status, _REGION_UNKNOWN), Reason.PHONE_REGION_UNKNOWN)
    out.defer(_positions(status, _DEFER))
    re2 = _positions(status, _RE2)
    waiting = _positions(status, _NEED)
    if len(waiting):
        # Country codes seen for the first time: build their tables, then decide those rows again (each
        # round builds at least one table, so this ends).
        wanted = [int(cc) for cc in np.flatnonzero(np.frombuffer(need, dtype=np.uint8))]
        before = pr.code_tables()
        again = None
        if pr.code_tables(wanted) != before:
            again = _decide_compiled(values.take(waiting), home, plus_defer)
        if again is None:
            re2 = pa.concat_arrays([re2, waiting])
        else:
            out.extend(remap(again[0], waiting))
            re2 = pa.concat_arrays([re2, pc.take(waiting, again[1])])
    return out, re2


def _parse_compiled(values: pa.Array, region: str | None, region_values: pa.Array | None) -> Outcome | None:
    """parse_phones with the compiled kernel, or None when it cannot take the array."""
    if values.type != pa.string() or values.null_count:
        return None
    if region_values is None:
        groups: list[tuple[str | None, pa.Array | None]] = [(normalize_region(region), None)]
    else:
        groups = list(_region_groups(region_values, region))
    out = Outcome()
    re2: list[pa.Array] = []
    for home, positions in groups:
        sub = values if positions is None else values.take(positions)
        decided = _decide_compiled(sub, home, plus_defer=region_values is not None)
        if decided is None:
            return None
        part, rest = decided
        if positions is None:
            out.extend(part)
            re2.append(rest)
        else:
            out.extend(remap(part, positions))
            re2.append(pc.take(positions, rest))
    left = concat(re2, pa.int64())
    if len(left):
        rows_region = region_values.take(left) if region_values is not None else None
        out.extend(remap(parse_phones_re2(values.take(left), region, rows_region), left))
    return out


def parse_phones_re2(values: pa.Array, region: str | None, region_values: pa.Array | None = None) -> Outcome:
    """parse_phones with RE2 and Arrow kernels only (and kernels.phone_scan when built)."""
    out = Outcome()
    n = len(values)
    if n == 0:
        return out
    idx = arange(n)
    # Digits, shape and `+` in one compiled pass when built; else RE2 and Arrow (same results).
    scanned = kernels.phone_scan(values)
    if scanned is not None:
        all_digits, shape, has_plus = scanned
    else:
        shape = fill_false(pc.match_substring_regex(values, SHAPE_RE))
    shape = pc.and_(shape, pc.less_equal(pc.binary_length(values), MAX_INPUT_LENGTH))
    odd = pc.invert(shape)
    if pc.any(odd).as_py():
        # ASCII without a digit cannot start a number: parse() says NOT_A_NUMBER. (Other
        # scripts have digits of their own, which parse() reads: those go to the fallback.)
        odd_idx, odd_values = pc.filter(idx, odd), pc.filter(values, odd)
        no_digit = pc.and_(
            pc.string_is_ascii(odd_values), pc.invert(pc.match_substring_regex(odd_values, "[0-9]"))
        )
        out.bad(pc.filter(odd_idx, no_digit), Reason.INVALID_PHONE)
        out.defer(pc.filter(odd_idx, pc.invert(no_digit)))
    idx = pc.filter(idx, shape)
    rows_region: pa.Array | None = None
    if region_values is not None:
        rows_region = pc.filter(region_values, shape)
    if scanned is not None:
        digits, plus = pc.filter(all_digits, shape), pc.filter(has_plus, shape)
    else:
        values = pc.filter(values, shape)
        digits = digits_only(values)
        plus = pc.match_substring(values, "+")
    count = pc.binary_length(digits)
    # No digit at all: parse() finds nothing that can start a number (NOT_A_NUMBER), any region.
    out.bad(pc.filter(idx, pc.equal(count, 0)), Reason.INVALID_PHONE)
    fast = pc.and_(pc.greater(count, 0), pc.less_equal(count, MAX_FAST_DIGITS))
    out.defer(pc.filter(idx, pc.greater(count, MAX_FAST_DIGITS)))
    idx, digits, plus = pc.filter(idx, fast), pc.filter(digits, fast), pc.filter(plus, fast)
    if rows_region is not None:
        rows_region = pc.filter(rows_region, fast)
    short_plus = pc.and_(plus, pc.less(pc.binary_length(digits), MIN_FAST_DIGITS))
    if pc.any(short_plus).as_py():
        out.defer(pc.filter(idx, short_plus))  # parse()'s retry logic for short `+` numbers: scalar
        keep = pc.invert(short_plus)
        idx, digits, plus = pc.filter(idx, keep), pc.filter(digits, keep), pc.filter(plus, keep)
        if rows_region is not None:
            rows_region = pc.filter(rows_region, keep)
    # One default region for every row: "" stands for none (an unknown country code after `+` is then an
    # unknown region); per-row regions leave unknown country codes to the scalar reference.
    plus_region = (normalize_region(region) or "") if rows_region is None else None
    _international(
        out, pc.filter(idx, plus), pc.filter(digits, plus), from_plus=True, plus_region=plus_region
    )
    national = pc.invert(plus)
    idx, digits = pc.filter(idx, national), pc.filter(digits, national)
    idd_idx: list[pa.Array] = []
    idd_digits: list[pa.Array] = []
    if rows_region is None:
        i, d = _national(out, idx, digits, normalize_region(region))
        idd_idx.append(i)
        idd_digits.append(d)
    else:
        rows_region = pc.utf8_upper(pc.utf8_trim_whitespace(pc.filter(rows_region, national)))
        rows_region = pc.if_else(pc.equal(rows_region, ""), pa.scalar(None, pa.string()), rows_region)
        if region is not None:
            rows_region = pc.fill_null(rows_region, normalize_region(region))
        missing = pc.is_null(rows_region)
        out.bad(pc.filter(idx, missing), Reason.PHONE_REGION_UNKNOWN)
        for r in pc.unique(pc.drop_null(rows_region)).to_pylist():
            mask = fill_false(pc.equal(rows_region, r))
            i, d = _national(out, pc.filter(idx, mask), pc.filter(digits, mask), str(r))
            idd_idx.append(i)
            idd_digits.append(d)
    _international(out, pa.concat_arrays(idd_idx), pa.concat_arrays(idd_digits), from_plus=False)
    return out
