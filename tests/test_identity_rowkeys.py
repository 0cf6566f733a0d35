"""Row keys and event ids that look like identifiers are keyed-hashed before they touch disk (real Parquet,
real DuckDB plans, real event staging and ledger)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ttsync.destinations.tiktok.events import EventOptions, plan_events
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.events.columns import plan_columns
from ttsync.events.ledger import Ledger
from ttsync.events.validate import EventRules, RowValidator
from ttsync.identity import ColumnSpec
from ttsync.identity.rowkeys import PREFIX, KeyHasher, looks_like_identifier
from ttsync.store.crypto import SecretBox, generate_key
from ttsync.sync.plan import SyncMode, connect, plan_audience
from ttsync.sync.prepare import prepare_to_parquet

KEY = b"0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

PERSONAL = [
    "ann@example.com",
    " Bob.Smith@Mail.co.uk ",
    "+1 415 555 0100",
    "(415) 555-0100",
    "4155550100",
    "0044 20 7946 0958",
    "07911 123456",
    "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    "cdda802e-fb9c-47ad-9866-0794d394c912",
    "hk:0123",  # a raw key must never pass for a hashed one
]
NOT_PERSONAL = ["r1", "1", "42", "C-000123", "1234567", "100000123", "12345678901234567", "order-7", "a b"]


def test_what_looks_like_an_identifier() -> None:
    values = pa.array([*PERSONAL, *NOT_PERSONAL, None])
    assert looks_like_identifier(values).to_pylist() == [True] * len(PERSONAL) + [False] * (
        len(NOT_PERSONAL) + 1
    )


def test_keyed_hash_is_hmac_sha256_and_only_personal_values_change() -> None:
    hasher = KeyHasher(KEY)
    values = pa.array([*PERSONAL, *NOT_PERSONAL, None])
    protected = hasher.protect(values).to_pylist()
    for raw, stored in zip(PERSONAL, protected, strict=False):
        expected = hmac.new(KEY, raw.encode(), hashlib.sha256).hexdigest()[:32]
        assert stored == PREFIX + expected == hasher.hash_one(raw)
    assert protected[len(PERSONAL) :] == [*NOT_PERSONAL, None]
    # Stable per key, different across keys; the key never shows.
    assert KeyHasher(KEY).protect(values).to_pylist() == protected
    assert KeyHasher(b"another key of 32 bytes........").protect(values).to_pylist()[0] != protected[0]
    assert "0123" not in repr(hasher)


def test_workspace_key_derives_a_stable_purpose_key() -> None:
    key = generate_key()
    box = SecretBox(key)
    assert box.derive_key("row-keys-v1") == SecretBox(key).derive_key("row-keys-v1")
    assert box.derive_key("row-keys-v1") != box.derive_key("other")
    assert box.derive_key("row-keys-v1") != SecretBox(generate_key()).derive_key("row-keys-v1")
    assert len(box.derive_key("row-keys-v1")) == 32


def _strings_in_parquet(path: Path) -> str:
    return repr(pq.read_table(path).to_pylist())


def test_email_row_keys_never_reach_the_prepared_or_plan_files(tmp_path: Path) -> None:
    emails = [f"person{i}@example.com" for i in range(300)]
    batch = pa.record_batch(
        {
            "email": pa.array(emails),
            "phone": pa.array(["not a phone"] * 150 + [f"+1 206 555 {i:04d}" for i in range(150)]),
        }
    )
    specs = [ColumnSpec("email", "email"), ColumnSpec("phone", "phone", region="US")]
    hasher = KeyHasher(KEY)
    out = prepare_to_parquet(
        [batch], specs=specs, key_column="email", out_dir=tmp_path / "prepared", key_hasher=hasher
    )
    con = connect(tmp_path / "plan")
    plan = plan_audience(
        con,
        prepared_glob=str(out.ids_path),
        snapshot=None,
        id_schemas=["EMAIL_SHA256", "PHONE_SHA256"],
        mode=SyncMode.MIRROR,
        work_dir=tmp_path / "plan",
    )
    con.close()
    files = [
        *sorted((tmp_path / "prepared").glob("*.parquet")),
        *sorted((tmp_path / "plan").glob("*.parquet")),
    ]
    assert {p.name for p in files} >= {"ids.parquet", "rejects.parquet", "owners.parquet", "add_rows.parquet"}
    for path in files:
        text = _strings_in_parquet(path)
        assert "@example.com" not in text, path.name
        assert "206 555" not in text, path.name
    # Keys are consistent: one add row per person (email and phone of a person stay together).
    rows = pq.read_table(plan.add_rows_path).to_pylist()
    assert len(rows) == 300
    assert {r["row_key"] for r in rows} == {hasher.hash_one(e) for e in emails}
    assert sum(1 for r in rows if r["PHONE_SHA256"]) == 150
    rejects = pq.read_table(out.rejects_path).to_pylist()
    assert {r["row_key"] for r in rejects} == {hasher.hash_one(e) for e in emails[:150]}
    # Without a key given, a random one still keeps raw keys off disk.
    other = prepare_to_parquet([batch], specs=specs, key_column="email", out_dir=tmp_path / "again")
    assert "@example.com" not in _strings_in_parquet(other.ids_path)


def test_customer_id_row_keys_stay_readable(tmp_path: Path) -> None:
    batch = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64()), "email": ["a@x.com", "nope", "c@x.com"]})
    out = prepare_to_parquet([batch], specs=[ColumnSpec("email", "email")], key_column="id", out_dir=tmp_path)
    assert sorted(pq.read_table(out.ids_path).column("row_key").to_pylist()) == ["1", "3"]
    assert pq.read_table(out.rejects_path).column("row_key").to_pylist() == ["2"]


def _event_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {
                "customer": f"buyer{i}@example.com",
                "email": f"buyer{i}@example.com",
                "event": "CompletePayment",
                "event_id": f"buyer{i}@example.com" if i % 2 else f"order-{i}",
                "timestamp": "2026-11-19T10:00:00Z",
                "value": 1.0,
            }
            for i in range(6)
        ]
    )


def test_event_ids_and_row_keys_that_look_personal_are_hashed_in_stage_outcomes_and_ledger(
    tmp_path: Path,
) -> None:
    hasher = KeyHasher(KEY)
    settings = ResolvedOfflineEventsSettings(advertiser_id="1", event_set_id="7000000000000000001")
    with Ledger.open(tmp_path / "state") as ledger:
        result = plan_events(
            [_event_batch()],
            settings=settings,
            key_column="customer",
            run_dir=tmp_path / "run",
            ledger=ledger,
            options=EventOptions(key_hasher=hasher),
            now=NOW,
        )
        assert result.totals.planned == 6
        outcomes = pq.read_table(result.outcomes_path).to_pylist()
        assert {o["row_key"] for o in outcomes} == {
            hasher.hash_one(f"buyer{i}@example.com") for i in range(6)
        }
    # The staged rows hold the hashed event ids: what the payload (and then the ledger) gets.
    rules = EventRules(event_set_id=settings.event_set_id)
    plan = plan_columns(_event_batch().schema.names, key_column="customer")
    prepared = RowValidator(plan, rules, key_column="customer", now=NOW, key_hasher=hasher).process(
        _event_batch()
    )
    ids = prepared.rows.column("event_id").to_pylist()
    assert ids[0::2] == ["order-0", "order-2", "order-4"]
    assert ids[1::2] == [hasher.hash_one(f"buyer{i}@example.com") for i in (1, 3, 5)]
    assert "@" not in repr(prepared.rows.to_pylist())


def test_without_a_workspace_key_personal_event_ids_are_rejected(tmp_path: Path) -> None:
    rules = EventRules(event_set_id="7000000000000000001")
    plan = plan_columns(_event_batch().schema.names, key_column="customer")
    prepared = RowValidator(plan, rules, key_column="customer", now=NOW).process(_event_batch())
    assert prepared.rows.column("reason").to_pylist() == [None, "personal_event_id"] * 3
    assert "@" not in repr(prepared.rows.to_pylist())


@pytest.mark.parametrize("rows", [1, 5000])
def test_vectorized_hash_matches_the_scalar_reference(rows: int) -> None:
    hasher = KeyHasher(KEY)
    values = pa.array([f"user{i}@example.com" for i in range(rows)])
    assert hasher.hash_array(values).to_pylist() == [hasher.hash_one(v) for v in values.to_pylist()]
    with duckdb.connect() as con:  # the DuckDB path does not leave the key in a connection's settings
        assert con.execute("SELECT 1").fetchone() == (1,)


def test_kernel_and_duckdb_paths_agree_and_integer_keys_are_checked_by_value() -> None:
    from ttsync.identity import kernels

    hasher = KeyHasher(KEY)
    values = pa.array([f"user{i}@example.com" for i in range(2000)] + ["é@x", "+1 415 555 0100"])
    reference = [hasher.hash_one(v) for v in values.to_pylist()]
    fast = kernels.hmac_sha256_hex(values, KEY, PREFIX, 32)
    if kernels.kernel_available():
        assert fast is not None
        assert fast.to_pylist() == reference
        sliced = kernels.hmac_sha256_hex(values.slice(5, 7), KEY, PREFIX, 32)
        assert sliced is not None
        assert sliced.to_pylist() == reference[5:12]
    # The DuckDB path (used when the kernel is not built, or for arrays with nulls) gives the same.
    with_null = pa.array([*values.to_pylist(), None])
    assert hasher.hash_array(with_null).to_pylist() == [*reference, None]
    numbers = pa.array([42, 1_234_567, 100_000_123, 4_155_550_100, 441_234_567_890, 10**15, None], pa.int64())
    protected = hasher.protect(pc.cast(numbers, pa.string()), numbers).to_pylist()
    as_text = hasher.protect(pc.cast(numbers, pa.string())).to_pylist()
    assert protected == as_text
    assert protected[:3] == ["42", "1234567", "100000123"]
    assert protected[3] == hasher.hash_one("4155550100")
    assert protected[5:] == [str(10**15), None]
