"""The vectorized Preparer: parity with the scalar reference, multi-values, auto, report."""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console

from ttsync.identity import ColumnSpec, InvalidIdentifier, Preparer, prepare_value
from ttsync.identity.spec import Kind, MaidHash


def _run(spec: ColumnSpec, values: list[Any], extra: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    keys = [str(i) for i in range(len(values))]
    columns: dict[str, Any] = {"row_key": keys, spec.column: values, **(extra or {})}
    with Preparer([spec]) as preparer:
        out = preparer.process(pa.record_batch(columns))
    got: dict[str, Any] = {}
    for row in out.ids.to_pylist():
        assert row["row_key"] not in got, "one value per row in these corpora"
        got[row["row_key"]] = row["hash"]
    for row in out.rejects.to_pylist():
        assert row["row_key"] not in got
        got[row["row_key"]] = "reject:" + row["reason"]
    return got


def _reference(spec: ColumnSpec, value: str | None, region: str | None = None) -> str | None:
    if value is None:
        return None
    try:
        return prepare_value(spec, value, region=region)
    except InvalidIdentifier as exc:
        return "reject:" + exc.reason.value


def _assert_parity(spec: ColumnSpec, values: list[Any], regions: list[str] | None = None) -> None:
    extra = {spec.region_column: regions} if spec.region_column and regions is not None else None
    got = _run(spec, values, extra)
    mismatches = []
    for i, value in enumerate(values):
        expected = _reference(spec, value, regions[i] if regions else None)
        if got.get(str(i)) != expected:
            mismatches.append((value, got.get(str(i)), expected))
    assert mismatches == []


def _fuzz(rng: random.Random, alphabet: str, n: int, length: tuple[int, int]) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(*length))) for _ in range(n)]


EMAILS = [
    " ALICE_abc@gmail.com ",
    "janedoe@gmail.com",
    "o'neil@example.ie",
    "a+tag@x.co",
    "x@y.z",
    "A@B.CO",
    "a..b@x.com",
    ".a@x.com",
    "a.@x.com",
    "a@x..com",
    "a@-x.com",
    "a@x-.com",
    "a@x--y.com",
    "ab--c@x.com",
    "a@xn--bcher-kva.example",
    "a@ab--cd.com",
    "a@localhost",
    "a@mail.local",
    "a@x.test",
    "a@x.onion",
    "a@x.123",
    "a@1.2.3.4",
    "a@[1.2.3.4]",
    '"a b"@x.com',
    "a b@x.com",
    "a@b@c.com",
    "John <j@x.com>",
    "jörg@bücher.example",
    "用户@例子.广告",
    "a@x.com\u00a0",
    "\ta@x.com",
    "a@x.com\n",
    "a\u200b@x.com",
    "x" * 64 + "@x.com",
    "x" * 65 + "@x.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["abcdefghi"] * 25) + ".com",
    "",
    "   ",
    "@",
    "a@",
    "@x.com",
    "plainaddress",
    "a@x.c0m",
    "a@x.co1",
    "a!#$%&*+/=?^_`{|}~-@x.org",
    "a@x_y.com",
    "a@X.COM",
    "a@x.com.",
    "Ä@x.com",
]


def test_email_parity_curated_and_fuzzed() -> None:
    rng = random.Random(11)
    fuzz = _fuzz(rng, "aZ0.@-_+' \"[]()!#\té", 3000, (0, 14))
    built = [
        f"{a}@{b}.{c}"
        for a, b, c in zip(
            _fuzz(rng, "ab.-_+'Z9 ", 2000, (0, 6)),
            _fuzz(rng, "ab.-9Z_", 2000, (0, 6)),
            _fuzz(rng, "comZ9-", 2000, (0, 4)),
            strict=True,
        )
    ]
    _assert_parity(ColumnSpec("v", "email"), [*EMAILS, *fuzz, *built, None])


def test_maid_parity() -> None:
    rng = random.Random(5)
    uuids = [
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        " 6d92078a-8246-4ba4-ae5b-76104861e7dc\t",
        "00000000-0000-0000-0000-000000000000",
    ]
    fuzz = []
    for _ in range(2000):
        u = "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(32))
        text = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
        if rng.random() < 0.3:
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice("g-x \u00a0") + text[i + 1 :]
        fuzz.append(text)
    kinds: list[Kind] = ["idfa", "aaid"]
    hashes: list[MaidHash] = ["sha256", "md5"]
    for kind in kinds:
        for maid_hash in hashes:
            _assert_parity(ColumnSpec("v", kind, maid_hash=maid_hash), [*uuids, *fuzz, "", " ", "nope"])


def test_external_id_and_prehashed_parity() -> None:
    rng = random.Random(3)
    values = _fuzz(rng, string.ascii_letters + string.digits + " \t_-é\u00a0", 2000, (0, 12))
    _assert_parity(ColumnSpec("v", "external_id"), values)
    digests = [hashlib.sha256(v.encode()).hexdigest() for v in values[:500]]
    mixed = (
        [d.upper() if i % 3 == 0 else f" {d} " for i, d in enumerate(digests)]
        + values[:200]
        + [d[:-1] for d in digests[:50]]
    )
    _assert_parity(ColumnSpec("v", "email", hash_state="sha256"), mixed)
    md5s = [hashlib.md5(v.encode(), usedforsecurity=False).hexdigest() for v in values[:300]]
    _assert_parity(ColumnSpec("v", "aaid", hash_state="md5"), md5s + digests[:20] + values[:20])


def test_phone_parity_through_preparer_with_region_column_and_digits() -> None:
    from test_identity_phone_parity import corpus

    rows = corpus()[::23]  # a deterministic sample: all regions, all shapes
    values = [v for v, _ in rows]
    regions = [r for _, r in rows]
    _assert_parity(ColumnSpec("v", "phone", region_column="country"), values, regions)
    _assert_parity(ColumnSpec("v", "phone", region="US", phone_format="digits"), values)


def test_integer_phone_column_is_read_as_digits() -> None:
    got = _run(ColumnSpec("v", "phone", region="US"), [12133734253, 2133734253, None])
    expected = hashlib.sha256(b"+12133734253").hexdigest()
    assert got == {"0": expected, "1": expected}


def test_multi_value_cells_list_and_delimiter() -> None:
    batch = pa.record_batch(
        {
            "row_key": ["a", "b", "c", "d"],
            "emails": pa.array([["x@a.com", "y@a.com"], [], None, ["bad", None, " "]], pa.list_(pa.string())),
            "phones": ["+44 20 7946 0018; (213) 373-4253", ";", "  ", None],
        }
    )
    specs = [ColumnSpec("emails", "email"), ColumnSpec("phones", "phone", region="US", delimiter=";")]
    with Preparer(specs) as preparer:
        out = preparer.process(batch)
        report = preparer.report()
    ids = sorted((r["row_key"], r["id_schema"], r["hash"]) for r in out.ids.to_pylist())

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    assert ids == sorted(
        [
            ("a", "EMAIL_SHA256", sha("x@a.com")),
            ("a", "EMAIL_SHA256", sha("y@a.com")),
            ("a", "PHONE_SHA256", sha("+442079460018")),
            ("a", "PHONE_SHA256", sha("+12133734253")),
        ]
    )
    rejects = sorted((r["row_key"], r["column"], r["reason"]) for r in out.rejects.to_pylist())
    assert rejects == [("c", "phones", "empty"), ("d", "emails", "empty"), ("d", "emails", "invalid_email")]
    by_type = {t.id_schema: t for t in report.types}
    assert by_type["EMAIL_SHA256"].present == 4
    assert by_type["EMAIL_SHA256"].valid == 2
    assert by_type["PHONE_SHA256"].present == 3
    assert by_type["PHONE_SHA256"].valid == 2
    assert report.people == 4
    assert report.people_matchable == 1
    assert report.share_matchable == pytest.approx(0.25)


def test_auto_decides_per_column_and_counts_misfits() -> None:
    digests = [hashlib.sha256(f"p{i}@x.com".encode()).hexdigest() for i in range(40)]
    hashed = [*digests[:38], "alice@example.com", "zz"]  # 95% hashed: decided sha256
    raw = ["bob@example.com"] * 30 + [digests[0]] * 2  # mostly raw: a digest among them is not re-hashed
    batch = pa.record_batch({"row_key": [str(i) for i in range(40)], "h": hashed, "r": [*raw, *[None] * 8]})
    specs = [ColumnSpec("h", "email", hash_state="auto"), ColumnSpec("r", "email", hash_state="auto")]
    with Preparer(specs) as preparer:
        out = preparer.process(batch)
        # The decision holds for later batches even if they look different.
        out2 = preparer.process(
            pa.record_batch({"row_key": ["x"], "h": ["carol@example.com"], "r": [digests[5]]})
        )
        report = preparer.report()
    decisions = {a.column: (a.decided, a.sampled, a.not_fitting) for a in report.auto}
    assert decisions == {"h": ("sha256", 40, 3), "r": ("raw", 32, 3)}
    hashes = {r["hash"] for r in out.ids.to_pylist()}
    assert set(digests[:38]) <= hashes
    assert hashlib.sha256(b"bob@example.com").hexdigest() in hashes
    assert hashlib.sha256(digests[0].encode()).hexdigest() not in hashes  # never hashed twice
    reasons = sorted(r["reason"] for r in out.rejects.to_pylist() + out2.rejects.to_pylist())
    assert reasons == [
        "looks_hashed",
        "looks_hashed",
        "looks_hashed",
        "not_sha256_hex",
        "not_sha256_hex",
        "not_sha256_hex",
    ]


def test_report_counts_duplicates_exactly_across_batches_and_columns() -> None:
    specs = [ColumnSpec("e1", "email"), ColumnSpec("e2", "email")]
    with Preparer(specs) as preparer:
        for start in range(0, 3000, 1000):
            keys = [str(i) for i in range(start, start + 1000)]
            e1 = [f"user{i % 1500}@x.com" for i in range(start, start + 1000)]  # 3000 values, 1500 distinct
            e2 = [f"USER{i % 1500}@X.COM " if i % 10 == 0 else None for i in range(start, start + 1000)]
            preparer.process(pa.record_batch({"row_key": keys, "e1": e1, "e2": e2}))
        report = preparer.report()
    (emails,) = report.types
    assert emails.columns == ["e1", "e2"]
    assert emails.present == 3300
    assert emails.valid == 3300
    assert emails.duplicates == 3300 - 1500
    assert emails.valid + sum(emails.rejected.values()) == emails.present


def test_missing_key_rows_are_rejected_once_and_skipped() -> None:
    batch = pa.record_batch({"row_key": ["1", None], "e": ["a@x.com", "b@x.com"]})
    with Preparer([ColumnSpec("e", "email")]) as preparer:
        out = preparer.process(batch)
        report = preparer.report()
    assert out.ids.column("row_key").to_pylist() == ["1"]
    assert out.rejects.to_pylist() == [{"row_key": None, "column": "row_key", "reason": "missing_key"}]
    assert report.people == 1


def test_report_is_json_and_renders() -> None:
    with Preparer([ColumnSpec("e", "email")]) as preparer:
        preparer.process(pa.record_batch({"row_key": ["1", "2"], "e": ["a@x.com", "nope"]}))
        report = preparer.report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["types"][0]["rejected"] == {"invalid_email": 1}
    console = Console(record=True, width=120)
    report.render(console)
    text = console.export_text()
    assert "EMAIL_SHA256" in text
    assert "50.0% matchable" in text


def test_pii_never_in_rejects_or_report() -> None:
    secret = "very.private.person@example.com"
    batch = pa.record_batch(
        {"row_key": ["1", "2"], "e": [secret, secret.replace("@", "")], "p": ["+1 999 555", "x"]}
    )
    with Preparer([ColumnSpec("e", "email"), ColumnSpec("p", "phone", region="US")]) as preparer:
        out = preparer.process(batch)
        report = preparer.report()
    blob = (
        json.dumps(report.to_dict()) + json.dumps(out.rejects.to_pylist()) + json.dumps(out.ids.to_pylist())
    )
    assert "private" not in blob
    assert "999" not in blob


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="MD5"):
        ColumnSpec("e", "email", hash_state="md5")
    with pytest.raises(ValueError, match="maid_hash"):
        ColumnSpec("e", "email", maid_hash="md5")
    with pytest.raises(ValueError, match="unknown identifier kind"):
        ColumnSpec("e", "fax")  # type: ignore[arg-type]
    with Preparer([ColumnSpec("e", "email")]) as preparer, pytest.raises(ValueError, match="no column"):
        preparer.process(pa.record_batch({"row_key": ["1"], "x": ["a"]}))


def test_md5_is_refused_for_kinds_that_never_arrive_as_md5_with_the_way_out() -> None:
    from ttsync.identity.spec import ColumnSpec, id_schema_for

    assert id_schema_for("idfa", "md5") == "IDFA_MD5"
    assert id_schema_for("email", "sha256") == "EMAIL_SHA256"
    with pytest.raises(ValueError, match=r"email identifiers cannot arrive MD5-hashed: use SHA256"):
        ColumnSpec("email", "email", hash_state="md5")


def _stream_batches() -> list[pa.RecordBatch]:
    """Three batches over every path a batch's chunks take: fast and scalar-decided emails, phones, a
    delimiter column, missing keys, and an `auto` MAID column blank in the first batch and MD5 after."""
    rng = random.Random(5)
    batches = []
    for b, n in enumerate((700, 650, 90)):
        emails = [rng.choice([*EMAILS, f" U{i % 300}@Example.com "]) for i in range(n)]
        phones = [
            rng.choice(["(212) 555-0100; +44 20 7946 0018", "555", " ", None, "２１３ ３７３ 4253"])
            for _ in range(n)
        ]
        maids = (
            [rng.choice(["  ", None]) for _ in range(n)]
            if b == 0
            else [hashlib.md5(f"m{i % 50}".encode(), usedforsecurity=False).hexdigest() for i in range(n)]
        )
        keys = [None if i % 97 == 5 else f"{b}-{i}" for i in range(n)]
        batches.append(pa.record_batch({"k": keys, "e": emails, "p": phones, "m": maids}))
    return batches


STREAM_SPECS = [
    ColumnSpec("e", "email"),
    ColumnSpec("p", "phone", region="US", delimiter=";"),
    ColumnSpec("m", "aaid", hash_state="auto", maid_hash="sha256"),
]


def _outputs(workers: int, stream: bool) -> tuple[list[Any], dict[str, Any]]:
    with Preparer(STREAM_SPECS, key_column="k", workers=workers) as preparer:
        batches = _stream_batches()
        prepared = preparer.process_stream(batches) if stream else map(preparer.process, batches)
        outputs = [(out.ids.to_pylist(), out.rejects.to_pylist()) for out in prepared]
    return outputs, preparer.report().to_dict()


def test_stream_and_chunks_give_the_same_outputs_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks: every batch is cut into several, the next batch's chunks start before this one ends.
    monkeypatch.setattr("ttsync.identity.prepare.CHUNK_ROWS", 64)
    one_by_one = _outputs(workers=2, stream=False)
    assert _outputs(workers=2, stream=True) == one_by_one
    assert _outputs(workers=1, stream=True) == one_by_one  # the number of workers changes nothing
    outputs, report = one_by_one
    assert len(outputs) == 3
    for (ids, rejects), batch in zip(outputs, _stream_batches(), strict=True):
        # Every present value of a keyed row is either an identifier or a reject, exactly once.
        assert all(r["row_key"] is not None for r in ids)
        missing = sum(k is None for k in batch.column("k").to_pylist())
        assert sum(r["reason"] == "missing_key" for r in rejects) == missing
    by_type = {t["id_schema"]: t for t in report["types"]}
    # The first batch's blank MAIDs are read as raw (nothing decided yet), even though the second batch,
    # submitted while the first one's chunks still run, decides the column is MD5.
    assert by_type["AAID_SHA256"]["rejected"] == {
        "empty": sum(
            m is not None and k is not None
            for m, k in zip(
                _stream_batches()[0].column("m").to_pylist(),
                _stream_batches()[0].column("k").to_pylist(),
                strict=True,
            )
        )
    }
    assert by_type["AAID_MD5"]["valid"] == 650 + 90 - sum(
        k is None for b in _stream_batches()[1:] for k in b.column("k").to_pylist()
    )
    assert by_type["AAID_MD5"]["duplicates"] == by_type["AAID_MD5"]["valid"] - 50


def test_stream_left_early_waits_for_started_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ttsync.identity.prepare.CHUNK_ROWS", 64)
    with Preparer(STREAM_SPECS, key_column="k", workers=2) as preparer:
        stream = preparer.process_stream(_stream_batches())
        first = next(stream)
        stream.close()  # the second batch was submitted: its chunks end before close() returns
        report = preparer.report()
    assert first.ids.num_rows > 0
    assert report.people == 700 - sum(k is None for k in _stream_batches()[0].column("k").to_pylist())


@pytest.mark.parametrize(("given", "expected"), [(None, "0"), ("1", "1")])
def test_importing_ttsync_turns_off_huge_pages_in_arrows_allocator_unless_set(
    given: str | None, expected: str
) -> None:
    # A fresh interpreter: mimalloc reads its options when pyarrow is first imported, after ttsync.
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ALLOW_THP"}
    if given is not None:
        env["MIMALLOC_ALLOW_THP"] = given
    code = "import os, ttsync, pyarrow; print(os.environ['MIMALLOC_ALLOW_THP'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
