"""The sample warehouse: deterministic, dirty in the documented ways, and changeable by churn."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from ttsync.sample import HIGH_VALUE_THRESHOLD, apply_churn, generate


def _fingerprint(path: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    rows = [
        con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {t}").fetchone() or ()
        for t in ("Merged_Customers", "Unified_Itemized_Transactions", "Unified_Paid_Media")
    ]
    con.close()
    return rows


def test_deterministic_for_the_same_inputs(tmp_path: Path) -> None:
    day = date(2026, 3, 1)
    generate(tmp_path / "a.duckdb", rows=2000, seed=3, as_of=day)
    generate(tmp_path / "b.duckdb", rows=2000, seed=3, as_of=day)
    generate(tmp_path / "c.duckdb", rows=2000, seed=4, as_of=day)
    assert _fingerprint(tmp_path / "a.duckdb") == _fingerprint(tmp_path / "b.duckdb")
    assert _fingerprint(tmp_path / "a.duckdb") != _fingerprint(tmp_path / "c.duckdb")


def test_realistic_dirt(tmp_path: Path) -> None:
    day = date(2026, 3, 1)
    counts = generate(tmp_path / "w.duckdb", rows=5000, seed=7, as_of=day)
    assert counts["Merged_Customers"] == 5000
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)

    def one(sql: str) -> int:
        row = con.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    mc = "FROM Merged_Customers"
    assert one(f"SELECT count(*) {mc} WHERE email IS NULL") > 0
    assert one(f"SELECT count(*) {mc} WHERE email = ''") > 0
    assert one(f"SELECT count(*) {mc} WHERE email <> trim(email)") > 0
    assert one(f"SELECT count(*) {mc} WHERE email <> lower(email)") > 0
    assert one(f"SELECT count(*) {mc} WHERE email IS NOT NULL AND NOT contains(email, '@')") > 0
    assert one(f"SELECT count(email) - count(DISTINCT lower(trim(email))) {mc}") > 0  # duplicates
    assert one(f"SELECT count(*) {mc} WHERE idfa = '00000000-0000-0000-0000-000000000000'") > 0
    assert one(f"SELECT count(*) {mc} WHERE phone LIKE '+%'") > 0
    assert one(f"SELECT count(*) {mc} WHERE phone LIKE '00%'") > 0
    assert one(f"SELECT count(DISTINCT country) {mc}") >= 7
    # The pre-hashed column is SHA-256 of the normalized email (some in uppercase hex).
    assert one(f"SELECT count(*) {mc} WHERE email_sha256 IS NOT NULL AND "
               "lower(email_sha256) <> sha256(lower(trim(email)))") == 0  # fmt: skip
    assert one(f"SELECT count(*) {mc} WHERE email_sha256 <> lower(email_sha256)") > 0
    # Transactions lie in the 60 days before as_of, some in the last 7.
    first, last = con.execute(
        "SELECT min(order_datetime), max(order_datetime) FROM Unified_Itemized_Transactions"
    ).fetchone() or (None, None)
    assert str(first) >= "2025-12-31"
    assert str(last) < "2026-03-01"
    assert (
        one("SELECT count(*) FROM Unified_Itemized_Transactions WHERE order_datetime > DATE '2026-03-01' - 7")
        > 0
    )
    assert (
        one("SELECT count(*) FROM Unified_Paid_Media pm ANTI JOIN Merged_Customers mc USING (amperity_id)")
        == 0
    )
    con.close()


def test_churn_moves_people_across_the_segment(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    generate(path, rows=5000, seed=7)
    segment = f"SELECT amperity_id FROM Merged_Customers WHERE lifetime_value >= {HIGH_VALUE_THRESHOLD}"
    con = duckdb.connect(str(path), read_only=True)
    before = {r[0] for r in con.execute(segment).fetchall()}
    con.close()
    moved = apply_churn(path, fraction=0.05, seed=1)
    con = duckdb.connect(str(path), read_only=True)
    after = {r[0] for r in con.execute(segment).fetchall()}
    con.close()
    assert len(before - after) == moved["left_segment"] > 0
    assert len(after - before) == moved["joined_segment"] > 0
