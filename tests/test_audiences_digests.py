"""Digests stored as integer words: exact round trips to hex, old hex snapshots still read, footer counts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.identity import ColumnSpec
from ttsync.identity.digests import HEX_SQL, digest_keys, duplicate_keys
from ttsync.identity.kernels import sha256_hex as kernel_sha256_hex
from ttsync.sync import prepare as prepare_module
from ttsync.sync.groups import kernel_built
from ttsync.sync.plan import SyncMode, connect, plan_audience
from ttsync.sync.prepare import hex_digest_words, prepare_to_parquet, read_footer
from ttsync.sync.snapshot import distinct_ids, snapshot_sql


def rebuilt_hex(keys: list[pa.Array]) -> list[str]:
    with duckdb.connect() as con:
        con.register("words", pa.table({f"k{i + 1}": k for i, k in enumerate(keys)}))
        return [row[0] for row in con.execute(f"SELECT {HEX_SQL} FROM words").fetchall()]


def test_sha256_and_md5_digests_round_trip_exactly() -> None:
    digests = [hashlib.sha256(f"user{i}@example.com".encode()).hexdigest() for i in range(50)]
    digests += [hashlib.md5(f"device-{i}".encode()).hexdigest() for i in range(50)]  # noqa: S324 - TikTok's MD5 ids
    digests += ["0" * 64, "f" * 64, "0" * 31 + "1", "ff" * 16]
    keys = digest_keys(pa.array(digests))
    assert rebuilt_hex(keys) == digests
    assert keys[2].null_count == 52  # every MD5 digest: two words only
    # Uppercase input is the same digest; TikTok gets it lowercase.
    assert rebuilt_hex(digest_keys(pa.array([digests[0].upper()]))) == [digests[0]]


def test_null_hashes_give_null_words_and_bad_values_are_refused() -> None:
    keys = digest_keys(pa.array([None, "a" * 64], pa.string()))
    assert keys[0].to_pylist() == [None, int("a" * 16, 16)]
    with pytest.raises(ValueError, match="neither an MD5 nor a SHA-256"):
        digest_keys(pa.array(["abc"]))
    with pytest.raises(ValueError, match="not a hex digest"):
        digest_keys(pa.array(["z" * 64]))


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "numpy"])
def test_prepared_words_equal_digest_keys(kernel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if kernel and not kernel_built():
        pytest.skip("the compiled sync kernel was not built")
    if not kernel:
        monkeypatch.setattr(
            prepare_module, "_groups", None
        )  # the fallback, as on a machine without a compiler
    sha = [hashlib.sha256(f"user{i}@example.com".encode()).hexdigest() for i in range(40)]
    sha += ["0" * 64, "f" * 64, ("0123456789abcdef" * 4).upper()]
    for hashes in (
        pa.array(sha),
        pa.array(sha).slice(3, 30),  # an offset into shared buffers
        pa.array([*sha[:5], hashlib.md5(b"device").hexdigest()]),  # noqa: S324 - an MD5 id: the generic decoder
        pa.array([sha[0], None], pa.string()),
        pa.array([], pa.string()),
    ):
        words = hex_digest_words(hashes)
        assert [w.to_pylist() for w in words] == [w.to_pylist() for w in digest_keys(hashes)]
        assert all(w.type == pa.uint64() for w in words)
    for bad in (["z" * 64], [sha[0], sha[1][:63] + "g"], ["abc"]):
        with pytest.raises(ValueError, match=r"hex digest|neither an MD5"):
            hex_digest_words(pa.array(bad))


def test_a_snapshot_in_the_older_hex_layout_is_read(tmp_path: Path) -> None:
    old = tmp_path / "old.parquet"
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]
    pq.write_table(pa.table({"id_schema": ["EMAIL_SHA256"] * 3, "hash": digests}), old)
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT {HEX_SQL} FROM {snapshot_sql(old)} ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == sorted(digests)
    assert distinct_ids(old) == 3


def test_prepared_footer_counts_feed_the_plan(tmp_path: Path) -> None:
    # Two people share one email: 3 people, 2 distinct identifiers.
    batch = pa.record_batch(
        {
            "id": pa.array(["1", "2", "3", "4"]),
            "email": ["a@example.com", "A@Example.com ", "b@example.com", None],
        }
    )
    out = prepare_to_parquet([batch], specs=[ColumnSpec("email", "email")], key_column="id", out_dir=tmp_path)
    assert out.digests_path is None  # the plan writes the digests-only set, sorted
    con = connect(tmp_path / "plan")
    plan = plan_audience(
        con,
        prepared_glob=str(out.ids_path),
        snapshot=None,
        id_schemas=["EMAIL_SHA256"],
        mode=SyncMode.MIRROR,
        work_dir=tmp_path / "plan",
        digests_path=tmp_path / "digests.parquet",  # as the pipeline passes it: absent, so not used
    )
    assert (plan.current_ids, plan.current_people, plan.add_ids, plan.add_rows) == (2, 3, 2, 2)
    assert plan.current_ids_path == tmp_path / "plan" / "current_ids.parquet"  # the snapshot to be
    for path in (out.ids_path, plan.current_ids_path):
        footer = read_footer(path)
        assert footer.distinct_ids == {"EMAIL_SHA256": 2}
        assert footer.people == 3
    assert pq.read_schema(plan.current_ids_path).names == ["id_schema", "k1", "k2", "k3", "k4"]
    # Min/max of random digest words and of row keys prune nothing and cost CPU on every write: only the
    # id schema keeps statistics.
    for path in (out.ids_path, plan.current_ids_path):
        group = pq.read_metadata(path).row_group(0)
        stats = {
            group.column(i).path_in_schema for i in range(group.num_columns) if group.column(i).is_stats_set
        }
        assert stats == {"id_schema"}
    sent = con.execute(f"SELECT * FROM read_parquet('{plan.add_rows_path}') ORDER BY row_key").fetchall()
    assert sent == [
        ("1", 1, hashlib.sha256(b"a@example.com").hexdigest()),  # the shared email goes once, owned by row 1
        ("3", 1, hashlib.sha256(b"b@example.com").hexdigest()),
    ]
    con.close()


def test_duplicate_keys_match_the_compiled_kernel() -> None:
    values = pa.array([f"person{i}@example.com" for i in range(100)])
    fast = kernel_sha256_hex(values)
    if fast is None:
        pytest.skip("the compiled kernels are not built here")
    hashes, keys = fast
    assert duplicate_keys(hashes).to_pylist() == keys.to_pylist()


def test_one_email_raw_in_one_column_and_prehashed_in_another_counts_once(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"a@example.com").hexdigest()
    batch = pa.record_batch(
        {"id": ["1", "2"], "email": ["a@example.com", None], "email_hash": [None, digest]}
    )
    specs = [ColumnSpec("email", "email"), ColumnSpec("email_hash", "email", hash_state="sha256")]
    out = prepare_to_parquet([batch], specs=specs, key_column="id", out_dir=tmp_path)
    stats = {t.id_schema: t for t in out.report.types}
    assert (stats["EMAIL_SHA256"].valid, stats["EMAIL_SHA256"].duplicates) == (2, 1)
    assert read_footer(out.ids_path).distinct_ids == {"EMAIL_SHA256": 1}
