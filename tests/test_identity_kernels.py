"""The compiled kernels (ttsync.identity._kernels: SHA-256, digit extraction) against hashlib and
Arrow, and the preparer with and without them (the DuckDB/Arrow fallbacks) giving identical output."""

from __future__ import annotations

import functools
import hashlib
import random
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ttsync.identity import ColumnSpec, Preparer, kernels, kinds
from ttsync.identity.kinds import EMAIL_FAST_MAX_LENGTH, EMAIL_FAST_RE, EMAIL_SPECIAL_USE_SUFFIXES
from ttsync.identity.phone_fast import SHAPE_RE, digits_only

needs_kernel = pytest.mark.skipif(not kernels.kernel_available(), reason="compiled kernels not built")

# Lengths around SHA-256's one-block limit (55 bytes), a two-block value, multi-byte UTF-8, empty.
EDGE_VALUES = ["", "a", "ann@example.com", "x" * 55, "y" * 56, "z" * 64, "é" * 40, "q" * 1000, "日本@例え.jp"]


@needs_kernel
def test_kernel_matches_hashlib_on_edge_lengths_and_sliced_arrays() -> None:
    values = pa.array(["lead-in", *EDGE_VALUES, "tail"])
    for array in (values, values.slice(1, len(EDGE_VALUES))):
        result = kernels.sha256_hex(array)
        assert result is not None
        hashes, keys = result
        expected = [hashlib.sha256(v.encode()).hexdigest() for v in array.to_pylist()]
        assert hashes.to_pylist() == expected
        assert keys.type == pa.uint64()
        assert len(keys) == len(array)
        # The duplicate key is the digest's first 8 bytes (little-endian).
        assert keys.to_pylist() == [int.from_bytes(bytes.fromhex(h[:16]), "little") for h in expected]


@needs_kernel
def test_kernel_declines_what_it_cannot_take_and_refuses_bad_offsets() -> None:
    assert kernels.sha256_hex(pa.array(["a", None])) is None  # nulls: the caller uses DuckDB
    assert kernels.sha256_hex(pa.array(["a"], pa.large_string())) is None
    empty = kernels.sha256_hex(pa.array([], pa.string()))
    assert empty is not None
    assert len(empty[0]) == 0
    from ttsync.identity import _kernels

    offsets = pa.array([0, 5, 99], pa.int32()).buffers()[1]  # the last value runs past the data
    with pytest.raises(ValueError, match="invalid string offsets"):
        _kernels.sha256_hex(offsets, b"hello", 0, 2)
    with pytest.raises(ValueError, match="do not cover"):
        _kernels.sha256_hex(offsets, b"hello", 1, 2)


Rows = list[dict[str, Any]]


@needs_kernel
def test_phone_scan_matches_re2_shape_and_arrow_digits() -> None:
    rng = random.Random(5)
    texts = [
        "",
        "x",
        "(212) 555-0100",
        "+44 20.7946/0958",
        "12345",
        "١٢٣ 45",
        "-()",
        "9" * 40,
        "+",
        "++1",
        "1+2",
    ]
    texts += [
        "".join(rng.choice("0189 ()./-+x#é") for _ in range(rng.randrange(0, 12))) for _ in range(50_000)
    ]
    values = pa.array(texts)
    expected_shape = pc.fill_null(pc.match_substring_regex(values, SHAPE_RE), False)
    for array, shape_ref in (
        (values, expected_shape),
        (values.slice(2, 3000), expected_shape.slice(2, 3000)),
    ):
        scanned = kernels.phone_scan(array)
        assert scanned is not None
        digits, shape, plus = scanned
        assert digits.to_pylist() == ["".join(c for c in v if c in "0123456789") for v in array.to_pylist()]
        assert shape == shape_ref
        assert plus == pc.match_substring(array, "+")
        # For the shapes it accepts, the Arrow fallback's digits are the same.
        shaped = pc.filter(array, shape_ref)
        assert pc.filter(digits, shape_ref) == digits_only(shaped)
    assert 0.05 < pc.mean(pc.cast(expected_shape, pa.int8())).as_py() < 0.95


def _email_like(rng: random.Random) -> str:
    """Near-valid addresses: the kinds of mistakes the fast check must see exactly as RE2 does."""
    atext = "abcxyz0189!#$%&'*+/=?^_`{|}~-"
    pieces = [
        "".join(rng.choice(atext) for _ in range(rng.randrange(0, 4))) for _ in range(rng.randrange(1, 4))
    ]
    local = ".".join(pieces)
    labels = [
        "".join(rng.choice("abz09-") for _ in range(rng.randrange(0, 5))) for _ in range(rng.randrange(1, 4))
    ]
    labels.append("".join(rng.choice("abcz") for _ in range(rng.randrange(0, 4))))
    text = f"{local}@{'.'.join(labels)}"
    roll = rng.random()
    if roll < 0.1:  # a stray character anywhere
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(' .@-A"é\x00') + text[at:]
    elif roll < 0.15:  # around the length limit
        text = "a" * rng.randrange(50, 60) + text
    return text


@needs_kernel
def test_email_fast_kernel_matches_re2_and_special_use_suffixes() -> None:
    rng = random.Random(11)
    alphabet = "ab0.-@_+!~`|{}'A\" é"
    texts = [
        "",
        "a@b.co",
        "a@b.c0",
        "a@b-.co",
        "a@-b.co",
        "a@b--c.co",
        "a.@b.co",
        ".a@b.co",
        "a..b@c.co",
        "a@b.co.",
        "a@b..co",
        "a@@b.co",
        "a@b",
        "a@1.co",
        "a@b.c-o",
        "x" * 55 + "@ab.cd",
        "x" * 56 + "@ab.cd",
    ]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14))) for _ in range(40_000)]
    texts += [_email_like(rng) for _ in range(80_000)]
    texts += [
        f"a@b.{tld}" for tld in ("test", "tes", "testx", "local", "localhost", "localhos", "onion", "arpa")
    ]
    texts += [
        _email_like(rng) + rng.choice(["", ".test", ".local", ".xtest", ".onion"]) for _ in range(20_000)
    ]
    values = pa.array(texts)
    special = [pc.ends_with(values, suffix) for suffix in EMAIL_SPECIAL_USE_SUFFIXES]
    expected = pc.and_(
        pc.and_(
            pc.fill_null(pc.match_substring_regex(values, EMAIL_FAST_RE), False),
            pc.less_equal(pc.binary_length(values), EMAIL_FAST_MAX_LENGTH),
        ),
        pc.invert(functools.reduce(pc.or_, special)),
    )
    for array, reference in ((values, expected), (values.slice(3, 5000), expected.slice(3, 5000))):
        compiled = kernels.email_fast(
            array, EMAIL_FAST_MAX_LENGTH, [s[1:] for s in EMAIL_SPECIAL_USE_SUFFIXES]
        )
        assert compiled is not None
        mismatches = [
            t
            for t, a, b in zip(array.to_pylist(), compiled.to_pylist(), reference.to_pylist(), strict=True)
            if a != b
        ]
        assert mismatches == []
    assert 0.05 < pc.mean(pc.cast(expected, pa.int8())).as_py() < 0.95  # the corpus has both outcomes


def _raw_email(rng: random.Random) -> str:
    """A near-valid address as a warehouse holds it: padding, mixed case, now and then a tab."""
    text = "".join(c.upper() if rng.random() < 0.2 else c for c in _email_like(rng))
    return rng.choice(["", " ", "  ", "\t"]) + text + rng.choice(["", " ", " \t", "   "])


@needs_kernel
def test_fused_email_kernel_matches_the_arrow_rules_and_hashlib() -> None:
    rng = random.Random(13)
    texts = [
        "",
        "   ",
        " A@B.CO ",
        "\tA@b.co",
        "a@b.co\t",
        "é@b.co",
        " " * 70 + "a@b.co",
        "x" * 58 + "@b.co ",
    ]
    texts += [_raw_email(rng) for _ in range(60_000)]
    values = pa.array(["lead-in", *texts])
    # The Arrow rules of kinds.emails on printable, non-blank values (what the preparer did before).
    normalized = kinds.trim_lower(values)
    special = [pc.ends_with(normalized, suffix) for suffix in EMAIL_SPECIAL_USE_SUFFIXES]
    reference = functools.reduce(
        pc.and_,
        [
            pc.fill_null(pc.ascii_is_printable(values), False),
            pc.invert(pc.fill_null(pc.ascii_is_space(values), False)),
            pc.fill_null(pc.match_substring_regex(normalized, EMAIL_FAST_RE), False),
            pc.less_equal(pc.binary_length(normalized), EMAIL_FAST_MAX_LENGTH),
            pc.invert(functools.reduce(pc.or_, special)),
        ],
    ).slice(1)
    writer = kernels.DigestWriter.create(len(texts) + 2)
    assert writer is not None
    # A piece before the emails: their digests go after it.
    assert writer.add(pa.array(["x", "y", "z"]).slice(1), prefix="+1")
    taken = kinds.hash_fast_emails(values.slice(1), writer)
    assert taken is not None
    assert [
        t for t, a, b in zip(texts, taken.to_pylist(), reference.to_pylist(), strict=True) if a != b
    ] == []
    hashes, keys = writer.finish()
    hashes.validate(full=True)
    passed = pc.filter(normalized.slice(1), taken).to_pylist()
    expected = [hashlib.sha256(v.encode()).hexdigest() for v in ["+1y", "+1z", *passed]]
    assert hashes.to_pylist() == expected
    assert keys.to_pylist() == [int.from_bytes(bytes.fromhex(h[:16]), "little") for h in expected]
    assert 0.05 < len(passed) / len(texts) < 0.95  # the corpus has both outcomes


@needs_kernel
def test_digest_writer_refuses_what_does_not_fit() -> None:
    writer = kernels.DigestWriter.create(2)
    assert writer is not None
    assert not writer.add(pa.array(["a", "b", "c"]))  # more than its capacity: nothing written
    assert not writer.add(pa.array(["a", None]))
    assert writer.add(pa.array(["a"]))
    assert writer.finish()[0].to_pylist() == [hashlib.sha256(b"a").hexdigest()]
    # Mostly empty: the few digests are copied out of the large buffers, and read the same.
    sparse = kernels.DigestWriter.create(1000)
    assert sparse is not None
    assert sparse.add(pa.array(["b", "c"]), prefix="+")
    hashes, keys = sparse.finish()
    hashes.validate(full=True)
    assert hashes.to_pylist() == [hashlib.sha256(b"+b").hexdigest(), hashlib.sha256(b"+c").hexdigest()]
    assert keys.to_pylist() == [int.from_bytes(bytes.fromhex(h[:16]), "little") for h in hashes.to_pylist()]
    from ttsync.identity import _kernels

    offsets = pa.array([0, 1], pa.int32()).buffers()[1]
    with pytest.raises(ValueError, match="cannot hold"):
        _kernels.sha256_hex_into(offsets, b"a", 0, 1, b"", bytearray(63), bytearray(8), 0)
    with pytest.raises(ValueError, match="cannot hold"):
        _kernels.email_sha256_into(offsets, b"a", 0, 1, 64, b".test.", bytearray(64), bytearray(8), 1)


def _row_order(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in row.values())


def _prepare(batches: list[pa.RecordBatch]) -> tuple[Rows, Rows, dict[str, Any]]:
    specs = [
        ColumnSpec("email", "email"),
        ColumnSpec("phone", "phone", region="US"),
        ColumnSpec("maid", "aaid", maid_hash="md5"),
    ]
    ids: Rows = []
    rejects: Rows = []
    with Preparer(specs, key_column="k", workers=2) as preparer:
        for batch in batches:
            out = preparer.process(batch)
            ids += out.ids.to_pylist()
            rejects += out.rejects.to_pylist()
    return ids, rejects, preparer.report().to_dict()


@needs_kernel
def test_preparer_output_is_identical_without_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 120_000  # two worker slices per batch
    emails = [f" User{i % 90_000}@Example.COM " if i % 7 else f"bad{i}" for i in range(n)]
    phones = [f"(212) 555-{i % 10_000:04d}" if i % 5 else f"+44 20 7946 {i % 10_000:04d}" for i in range(n)]
    maids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n)]
    batch = pa.record_batch(
        {"k": [str(i) for i in range(n)], "email": emails, "phone": phones, "maid": maids}
    )
    batches = [batch, batch.slice(0, 1000)]
    with_kernel = _prepare(batches)
    # Force the DuckDB/Arrow paths the way an install without a compiler would have them.
    monkeypatch.setattr(kernels, "_kernels", None)
    assert not kernels.kernel_available()
    without_kernel = _prepare(batches)
    # The same rows; the order of a column's ids may differ (the compiled phone kernel gives row order,
    # the RE2 path groups them by country code).
    assert sorted(with_kernel[0], key=_row_order) == sorted(without_kernel[0], key=_row_order)
    assert with_kernel[1] == without_kernel[1]
    assert with_kernel[2] == without_kernel[2]
    # Duplicates are exact with the kernel's keys too: valid emails minus distinct valid emails.
    valid = [e.strip().lower() for e in emails + emails[:1000] if "@" in e]
    email_stats = next(t for t in with_kernel[2]["types"] if t["id_schema"] == "EMAIL_SHA256")
    assert email_stats["valid"] == len(valid)
    assert email_stats["duplicates"] == len(valid) - len(set(valid))
    first = next(r for r in with_kernel[0] if r["row_key"] == "1" and r["id_schema"] == "EMAIL_SHA256")
    assert first["hash"] == hashlib.sha256(b"user1@example.com").hexdigest()
