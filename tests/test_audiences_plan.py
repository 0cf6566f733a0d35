"""The audience plan: DuckDB diff of prepared identifiers against the snapshot, over real Parquet files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.destinations.tiktok.client.batch_data import batch_data_json, build_batch_data
from ttsync.sync.inflight import clear_inflight, inflight_files, inflight_sql, record_inflight
from ttsync.sync.plan import (
    AudiencePlan,
    SyncMode,
    connect,
    iter_add_batches,
    iter_remove_batches,
    next_snapshot_sql,
    plan_audience,
)
from ttsync.sync.prepare import ids_batch
from ttsync.sync.snapshot import commit_snapshot, commit_snapshot_file, distinct_ids

E, P = "EMAIL_SHA256", "PHONE_SHA256"


def h(n: int) -> str:
    return f"{n:064x}"


def write_ids(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """A prepared file as the prepare stage writes it (without its footer: counts come from DuckDB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a committed snapshot may be a hard link to the previous file
    table = pa.table(
        {
            "row_key": [r[0] for r in rows],
            "id_schema": [r[1] for r in rows],
            "hash": [r[2] for r in rows],
        }
    )
    pq.write_table(pa.Table.from_batches([ids_batch(table)]), path)


def run_plan(
    tmp: Path,
    rows: list[tuple[str, str, str]],
    snapshot: Path | None,
    mode: SyncMode,
    schemas: tuple[str, ...] = (E, P),
) -> tuple[duckdb.DuckDBPyConnection, AudiencePlan]:
    write_ids(tmp / "ids" / "part-0.parquet", rows)
    con = connect(tmp / "work")
    plan = plan_audience(
        con,
        prepared_glob=str(tmp / "ids" / "*.parquet"),
        snapshot=snapshot,
        id_schemas=schemas,
        mode=mode,
        work_dir=tmp / "work",
    )
    return con, plan


def test_first_delivery_adds_everyone_in_aligned_rows(tmp_path: Path) -> None:
    rows = [("1", E, h(1)), ("1", P, h(2)), ("1", E, h(3)), ("2", P, h(4)), ("3", E, h(5))]
    con, plan = run_plan(tmp_path, rows, None, SyncMode.MIRROR)
    assert plan.full_upload
    assert (plan.current_ids, plan.current_people, plan.add_ids, plan.remove_ids) == (5, 3, 5, 0)
    batches = list(iter_add_batches(con, plan, batch_rows=2))
    got = pa.Table.from_batches(batches).to_pylist()
    # person 1 has two emails and one phone -> two rows; the second row has no phone (row order is the plan
    # file's order: not meaningful, only stable)
    key = lambda row: (row[E] or "", row[P] or "")  # noqa: E731
    assert sorted(got, key=key) == sorted(
        [{E: h(1), P: h(2)}, {E: h(3), P: None}, {E: None, P: h(4)}, {E: h(5), P: None}], key=key
    )
    assert [b.num_rows for b in batches] == [2, 2]


def test_mirror_diff_against_snapshot(tmp_path: Path) -> None:
    first = [("1", E, h(1)), ("2", E, h(2)), ("3", E, h(3))]
    _con, plan = run_plan(tmp_path / "a", first, None, SyncMode.MIRROR)
    snap = tmp_path / "snap.parquet"
    assert next_snapshot_sql(plan, None) is None  # mirror: the snapshot is the plan's current set
    assert commit_snapshot_file(plan.current_ids_path, snap) == 3

    second = [("2", E, h(2)), ("3", E, h(3)), ("4", E, h(4)), ("4", P, h(40))]
    con2, plan2 = run_plan(tmp_path / "b", second, snap, SyncMode.MIRROR)
    assert not plan2.full_upload
    assert (plan2.previous_ids, plan2.add_ids, plan2.remove_ids) == (3, 2, 1)
    assert plan2.remove_share == pytest.approx(1 / 3)
    removed = pa.Table.from_batches(list(iter_remove_batches(con2, plan2, 10))).to_pylist()
    assert removed == [{E: h(1), P: None}]
    added = pa.Table.from_batches(list(iter_add_batches(con2, plan2, 10))).to_pylist()
    assert added == [{E: h(4), P: h(40)}]
    assert commit_snapshot_file(plan2.current_ids_path, snap) == 4
    assert plan2.current_ids_path.exists()  # linked, not moved: a retried commit still finds it


def test_md5_identifiers_diff_and_come_back_as_32_hex_characters(tmp_path: Path) -> None:
    m = "IDFA_MD5"

    def md5(n: int) -> str:
        return f"{n:032x}"

    _con, plan = run_plan(tmp_path / "a", [("1", m, md5(1)), ("2", m, md5(2))], None, SyncMode.MIRROR, (m,))
    snap = tmp_path / "snap.parquet"
    commit_snapshot_file(plan.current_ids_path, snap)
    # Shared, duplicated and changed identifiers: only the changes go out.
    rows = [("2", m, md5(2)), ("3", m, md5(2)), ("4", m, md5(4)), ("5", m, md5(4))]
    con2, plan2 = run_plan(tmp_path / "b", rows, snap, SyncMode.MIRROR, (m,))
    assert (plan2.previous_ids, plan2.add_ids, plan2.remove_ids, plan2.current_ids) == (2, 1, 1, 2)
    assert pa.Table.from_batches(list(iter_add_batches(con2, plan2, 10))).to_pylist() == [{m: md5(4)}]
    assert pa.Table.from_batches(list(iter_remove_batches(con2, plan2, 10))).to_pylist() == [{m: md5(1)}]


def test_append_never_removes_and_snapshot_keeps_old_ids(tmp_path: Path) -> None:
    _con, plan = run_plan(tmp_path / "a", [("1", E, h(1)), ("2", E, h(2))], None, SyncMode.APPEND)
    snap = tmp_path / "snap.parquet"
    commit_snapshot_file(plan.current_ids_path, snap)
    con2, plan2 = run_plan(tmp_path / "b", [("3", E, h(3))], snap, SyncMode.APPEND)
    assert (plan2.add_ids, plan2.remove_ids) == (1, 0)
    union = next_snapshot_sql(plan2, snap)
    assert union is not None
    commit_snapshot(con2, union, snap)
    assert distinct_ids(snap) == 3


def test_shared_identifier_is_sent_once(tmp_path: Path) -> None:
    # Two customers with the same email: one identifier, one owner row.
    _con, plan = run_plan(tmp_path, [("1", E, h(7)), ("2", E, h(7))], None, SyncMode.MIRROR, schemas=(E,))
    assert (plan.current_ids, plan.add_ids, plan.add_rows) == (1, 1, 1)


def test_schemas_outside_destination_are_ignored(tmp_path: Path) -> None:
    con, plan = run_plan(tmp_path, [("1", E, h(1)), ("1", P, h(2))], None, SyncMode.MIRROR, schemas=(P,))
    assert plan.add_ids == 1
    assert pa.Table.from_batches(list(iter_add_batches(con, plan, 5))).to_pylist() == [{P: h(2)}]


def test_batch_data_json_is_aligned_and_valid_json() -> None:
    batch = pa.record_batch({E: [h(1), None], P: [h(2), h(3)]})
    body = json.loads(batch_data_json(batch, ["123"]))
    assert body == [
        [{"id": h(1), "audience_ids": ["123"]}, {"id": h(2), "audience_ids": ["123"]}],
        [{}, {"id": h(3), "audience_ids": ["123"]}],
    ]


def test_batches_are_stable_for_checkpoints(tmp_path: Path) -> None:
    rows = [(f"{i:05d}", E, h(i)) for i in range(1, 1001)]
    con, plan = run_plan(tmp_path, rows, None, SyncMode.MIRROR, schemas=(E,))
    first = [b.column(0).to_pylist() for b in iter_add_batches(con, plan, 128)]
    second = [b.column(0).to_pylist() for b in iter_add_batches(con, plan, 128)]
    assert first == second
    assert [len(b) for b in first] == [128] * 7 + [104]


def test_plan_state_round_trip(tmp_path: Path) -> None:
    _con, plan = run_plan(tmp_path, [("1", E, h(1))], None, SyncMode.MIRROR)
    assert AudiencePlan.from_state(plan.to_state()) == plan


def test_batch_data_json_matches_the_typed_builder_on_slices_and_nulls() -> None:
    """The bulk path (Arrow buffers) and the typed path (a dict per identifier) write the same rows, also for
    a slice of a batch (Arrow offsets not at zero), as the upload's re-batching produces."""
    md5 = "IDFA_MD5"
    emails = [h(i) if i % 3 else None for i in range(40)]
    idfas = [
        hashlib.md5(str(i).encode(), usedforsecurity=False).hexdigest() if i % 4 else None for i in range(40)
    ]
    batch = pa.record_batch({E: emails, md5: idfas})
    for start, length in ((0, 40), (5, 17), (39, 1)):
        part = batch.slice(start, length)
        rows = [
            (e, i) for e, i in zip(emails[start : start + length], idfas[start : start + length], strict=True)
        ]
        kept = [r for r in rows if any(r)]  # the typed builder refuses a row with no identifier at all
        expected = build_batch_data([E, md5], kept, ["7"])  # type: ignore[list-item]
        got = [row for row in json.loads(batch_data_json(part, ["7"])) if row != [{}, {}]]
        assert got == expected


@pytest.mark.parametrize(
    "bad",
    ["a" * 63, "a" * 65, "a" * 33, "g" * 64, "A" * 32, "a" * 63 + "\n", "", "é" * 32, "0" * 31 + " "],
    ids=["63", "65", "33", "non-hex", "upper", "newline", "empty", "multibyte", "space"],
)
def test_batch_data_json_refuses_what_is_not_a_hex_digest(bad: str) -> None:
    batch = pa.record_batch({E: pa.array([h(1), bad, None], pa.string()).slice(1)})
    with pytest.raises(ValueError, match="not lowercase hex hashes"):
        batch_data_json(batch, ["1"])


def test_batch_data_json_refuses_anything_but_hashes() -> None:
    batch = pa.record_batch({E: [h(1), "someone@example.com"]})
    with pytest.raises(ValueError, match="not lowercase hex hashes"):
        batch_data_json(batch, ["1"])
    upper = pa.record_batch({E: [h(10).upper()]})
    with pytest.raises(ValueError, match=E):
        batch_data_json(upper, ["1"])


def test_inflight_record_keeps_what_was_sent_when_the_plan_is_written_again(tmp_path: Path) -> None:
    """The record links the plan's add rows instead of copying them; planning again in the same folder writes
    new files, so the record still says what the first upload may have sent, and a later plan removes it."""
    con, first = run_plan(tmp_path, [("1", E, h(1)), ("1", P, h(2)), ("2", E, h(3))], None, SyncMode.MIRROR)
    record = record_inflight(con, first, tmp_path / "inflight", "wf1")
    files = inflight_files(tmp_path / "inflight")
    assert len(files) == 2  # the record (removes) and its adds
    con, _second = run_plan(tmp_path, [("3", E, h(4))], None, SyncMode.MIRROR)  # same work folder
    recorded = con.execute(
        f"SELECT op, id_schema, k1, k4 FROM {inflight_sql(files)} ORDER BY 2, 4"
    ).fetchall()
    assert recorded == [("add", E, 0, 1), ("add", E, 0, 3), ("add", P, 0, 2)]
    # A plan reconciling the record removes what may have been sent and is no longer in the query.
    write_ids(tmp_path / "ids" / "part-0.parquet", [("1", E, h(1))])
    third = plan_audience(
        con,
        prepared_glob=str(tmp_path / "ids" / "*.parquet"),
        snapshot=None,
        id_schemas=(E, P),
        mode=SyncMode.MIRROR,
        work_dir=tmp_path / "work3",
        inflight=files,
    )
    removed = sorted(
        b[E] or b[P] for b in pa.Table.from_batches(list(iter_remove_batches(con, third, 10))).to_pylist()
    )
    assert removed == [h(2), h(3)]
    clear_inflight([record])
    assert inflight_files(tmp_path / "inflight") == []
