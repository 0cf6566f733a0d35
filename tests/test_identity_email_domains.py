"""The per-domain email verdicts (ttsync.identity.email_domains) against the scalar reference
(scalar.normalize_email, i.e. email-validator on every value), on generated addresses built to reach every
branch: internationalized and Punycode domains in mixed case, invalid IDNA, special-use and literal
domains, quoted and non-ASCII local parts, and lengths around every email-validator limit."""

from __future__ import annotations

import hashlib
import random

import pyarrow as pa
import pytest

from ttsync.identity import ColumnSpec, Preparer
from ttsync.identity.email_domains import EmailDomains
from ttsync.identity.reasons import InvalidIdentifier
from ttsync.identity.scalar import normalize_email

DOMAINS = [
    "bücher.example",
    "BÜCHER.Example",
    "xn--bcher-kva.example",
    "XN--BCHER-KVA.EXAMPLE",
    "xn--zz.example",  # not valid Punycode
    "xn--a.com",
    "bücher。example",  # ideographic full stop
    "straße.de",
    "faß.de",
    "例え.jp",
    "ελληνικά.gr",
    "☃.net",
    "a..b.com",
    "-a.com",
    "a-.com",
    "mail.test",
    "bücher.local",
    "localhost",
    "[192.0.2.1]",
    "gmail.com",
    "x.y",
    "münchen",
    "a_b.com",
    "b\u0308cher.example",  # a combining diaeresis (NFC makes it ü)
    "\u0308bücher.example",  # a combining mark first
    "",
]
LOCALS = [
    "ann",
    "Ann.Lee",
    "o'neil",
    "jörg",
    "JÖRG",
    "jo\u0308rg",  # not NFC
    "日本",
    "a..b",
    ".a",
    "a.",
    '"a b"',
    "a<b",
    "a b",
    "x" * 64,
    "x" * 65,
    "é" * 32,
    "é" * 33,
    "postmaster",
    "a+tag",
    "",
]


def _outcome(decide: object, value: str) -> tuple[str, str]:
    try:
        return ("ok", decide(value))  # type: ignore[operator]
    except InvalidIdentifier as exc:
        return ("bad", exc.reason.value)


def _long_domain(rng: random.Random, target: int, idna: bool) -> str:
    """A domain of about `target` characters: labels up to 63 long, one of them internationalized."""
    labels: list[str] = []
    while sum(len(label) + 1 for label in labels) < target - 4:
        labels.append("a" * rng.randrange(1, 64))
    if idna and labels:
        labels[0] = "ü" + labels[0][1:]
    return ".".join([*labels, "com"])


def _addresses(rng: random.Random) -> list[str]:
    values = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
    for _ in range(600):
        local = rng.choice([*LOCALS, "u" + str(rng.randrange(10**6)), "y" * rng.randrange(1, 66)])
        domain = rng.choice([*DOMAINS, _long_domain(rng, rng.randrange(150, 256), rng.random() < 0.7)])
        text = f"{local}@{domain}"
        roll = rng.random()
        if roll < 0.1:
            text = f" {text.upper()} "
        elif roll < 0.15:
            text = text.replace("@", "@@", 1)
        elif roll < 0.2:
            text = text.replace("@", "", 1)
        values.append(text)
    return values


def test_per_domain_verdicts_match_the_reference() -> None:
    values = _addresses(random.Random(3))
    domains = EmailDomains()
    mismatches = [v for v in values if _outcome(domains.normalize, v) != _outcome(normalize_email, v)]
    assert mismatches == []
    # Every outcome is there: accepted and refused, the cache used, long addresses refused for length.
    outcomes = [_outcome(normalize_email, v)[0] for v in values]
    assert outcomes.count("ok") > 100
    assert outcomes.count("bad") > 100
    assert domains.lookups < len(values) / 2
    assert any(
        _outcome(normalize_email, v)[0] == "bad"
        and _outcome(normalize_email, "a@" + v.split("@")[1])[0] == "ok"
        for v in values
        if v.count("@") == 1 and len(v) > 200
    )


def test_the_domain_cache_is_bounded_and_reused() -> None:
    domains = EmailDomains(max_domains=3)
    for i in range(10):
        assert domains.normalize(f"u{i}@bücher{i}.example") == f"u{i}@bücher{i}.example"
        assert len(domains) <= 3
    assert domains.lookups == 10
    for i in range(5):
        domains.normalize(f"v{i}@BÜCHER9.example")  # lowercased: the cached bücher9.example
    assert domains.lookups == 10
    with pytest.raises(InvalidIdentifier):
        domains.normalize("u@xn--zz.example")
    with pytest.raises(InvalidIdentifier):
        domains.normalize("u2@xn--zz.example")  # the refusal is cached too
    assert domains.lookups == 11
    with pytest.raises(ValueError, match="at least 1"):
        EmailDomains(max_domains=0)


def test_preparer_hashes_internationalized_addresses_like_the_reference() -> None:
    values = [f"u{i}@XN--BCHER-KVA.example" for i in range(50)] + [
        f"jörg{i}@Bücher.example" for i in range(50)
    ]
    values += ["a@xn--zz.example", "jörg@bücher.test", " Ann@Example.org "]
    batch = pa.record_batch({"row_key": [str(i) for i in range(len(values))], "email": values})
    with Preparer([ColumnSpec("email", "email")], workers=1) as preparer:
        out = preparer.process(batch)
    got = {r["row_key"]: r["hash"] for r in out.ids.to_pylist()}
    expected = {}
    for i, value in enumerate(values):
        outcome = _outcome(normalize_email, value)
        if outcome[0] == "ok":
            expected[str(i)] = hashlib.sha256(outcome[1].encode()).hexdigest()
    assert got == expected
    assert len(expected) == 101
