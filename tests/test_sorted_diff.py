"""The sort-merge diff (ttsync.sync.sorted_diff, the compiled sort and merge in sync/_groups.c): checked against
plain Python sets and sorts, and the plan it feeds against the DuckDB diff it replaces, over real Parquet files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.identity.digests import KEY_COLUMNS
from ttsync.sync import sorted_diff
from ttsync.sync.plan import SyncMode, commit_plan_snapshot, connect, plan_audience
from ttsync.sync.prepare import IDS_SCHEMA
from ttsync.sync.snapshot import distinct_ids

pytestmark = pytest.mark.skipif(not sorted_diff.available(), reason="the compiled kernel was not built")

E, P = "EMAIL_SHA256", "PHONE_SHA256"
Words = tuple[int, int, int, int]


def random_words(rng: random.Random, n: int, k1_values: int) -> list[Words]:
    """Digest words with only `k1_values` distinct k1 (ties broken by k2..k4) and some exact duplicates."""
    k1s = [rng.getrandbits(64) for _ in range(k1_values)]
    words = [(rng.choice(k1s), rng.getrandbits(2), rng.getrandbits(64), rng.getrandbits(1)) for _ in range(n)]
    return words + rng.sample(words, n // 10)


def write_prepared(path: Path, rows: list[tuple[str, str, Words]], group_rows: int = 1000) -> None:
    """A prepared file (row_key, id_schema, k1..k4) in row groups of `group_rows`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    table = pa.table(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            *(pa.array([r[2][i] for r in rows], pa.uint64()) for i in range(4)),
        ],
        schema=IDS_SCHEMA,
    )
    pq.write_table(table, path, row_group_size=group_rows)


def read_words(path: Path) -> list[tuple[str, int, int, int, int]]:
    table = pq.read_table(path)
    return list(zip(*(table.column(c).to_pylist() for c in ["id_schema", *KEY_COLUMNS]), strict=True))


def test_the_new_set_is_written_sorted_with_ties_and_duplicates(tmp_path: Path) -> None:
    rng = random.Random(7)
    # 3 k1 values over 3,000 rows: buckets of ~1,000 records go through the merge sort, not insertion only.
    rows = [(str(i), E, w) for i, w in enumerate(random_words(rng, 3000, 3))]
    rows += [(f"p{i}", P, w) for i, w in enumerate(random_words(rng, 500, 400))]
    rng.shuffle(rows)
    write_prepared(tmp_path / "ids.parquet", rows, group_rows=700)
    result = sorted_diff.sort_and_merge(tmp_path / "ids.parquet", (P, E), None, tmp_path)
    assert result is not None
    assert not result.merged
    result.wait()
    written = read_words(result.current_ids_path)
    assert written == sorted((s, *w) for _, s, w in rows)  # every row kept: duplicates too
    assert result.distinct_ids == {s: len({w for _, t, w in rows if t == s}) for s in (E, P)}
    assert distinct_ids(result.current_ids_path) == len({(s, w) for _, s, w in rows})
    assert pq.read_schema(result.current_ids_path).field("id_schema").type == pa.string()


@pytest.mark.parametrize("snapshot_group_rows", [3, 1 << 20])
def test_merge_equals_the_set_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot_group_rows: int
) -> None:
    rng = random.Random(snapshot_group_rows)
    universe = {s: random_words(rng, 400, 150) for s in (E, P)}
    old = [(f"o{i}", s, w) for s in (E, P) for i, w in enumerate(rng.sample(universe[s], 250))]
    new = [(f"n{i}", s, w) for s in (E, P) for i, w in enumerate(rng.sample(universe[s], 260))]
    new += [(f"x{i}", E, w) for i, w in enumerate(rng.sample([w for _, _, w in new[:50]], 20))]  # shared ids
    rng.shuffle(new)
    write_prepared(tmp_path / "old" / "ids.parquet", old)
    # Small row groups in the snapshot: runs of one identifier straddle the merge's chunks.
    monkeypatch.setattr(sorted_diff, "_WRITE_ROWS", snapshot_group_rows)
    first = sorted_diff.sort_and_merge(tmp_path / "old" / "ids.parquet", (E, P), None, tmp_path / "old")
    assert first is not None
    first.wait()
    write_prepared(tmp_path / "new" / "ids.parquet", new, group_rows=97)
    result = sorted_diff.sort_and_merge(
        tmp_path / "new" / "ids.parquet", (E, P), first.current_ids_path, tmp_path / "new"
    )
    assert result is not None
    assert result.merged
    for schema in (E, P):
        before = {w for _, s, w in old if s == schema}
        mine = [(key, w) for key, s, w in new if s == schema]  # in file order: ordinals are positions here
        added = sorted_diff.row_keys(tmp_path / "new" / "ids.parquet", {schema: result.adds[schema]["idx"]})
        got_adds = sorted(
            zip(added[schema].to_pylist(), map(tuple, _words(result.adds[schema])), strict=True)
        )
        assert got_adds == sorted((key, w) for key, w in mine if w not in before)
        got_removes = sorted(tuple(int(x) for x in row) for row in result.removes[schema])
        assert got_removes == sorted(before - {w for _, w in mine})  # each once, though held twice


def _words(records: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(r[k]) for k in KEY_COLUMNS) for r in records]


def _unsorted_snapshot(path: Path, rows: list[tuple[str, Words]], layout: str) -> None:
    """A snapshot as an earlier release wrote it: digest words in prepare order, or the older hex layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "hex":
        hexes = ["".join(f"{x:016x}" for x in w) for _, w in rows]
        pq.write_table(pa.table({"id_schema": [s for s, _ in rows], "hash": hexes}), path)
    else:
        columns = {"id_schema": [s for s, _ in rows]} | {
            k: pa.array([w[i] for _, w in rows], pa.uint64()) for i, k in enumerate(KEY_COLUMNS)
        }
        pq.write_table(pa.table(columns), path)


def _plan_files(plan_dir: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    adds = pq.read_table(plan_dir / "add_rows.parquet").to_pylist()
    removes = pq.read_table(plan_dir / "remove_ids.parquet").to_pylist()
    return sorted(tuple(r.values()) for r in adds), sorted(tuple(r.values()) for r in removes)


@pytest.mark.parametrize("mode", [SyncMode.MIRROR, SyncMode.APPEND])
@pytest.mark.parametrize("layout", ["words", "hex"])
def test_a_plan_against_an_earlier_release_snapshot_equals_the_sorted_one(
    tmp_path: Path, mode: SyncMode, layout: str
) -> None:
    rng = random.Random(3)
    universe = random_words(rng, 300, 300)
    old = [(s, w) for w in rng.sample(universe, 200) for s in (E, P)]
    new = [(str(i), s, w) for i, w in enumerate(rng.sample(universe, 210)) for s in (E, P)]
    write_prepared(tmp_path / "ids.parquet", new)
    plans = {}
    for name in ("earlier", "sorted"):
        snapshot = tmp_path / name / "snapshot.parquet"
        if name == "earlier":
            _unsorted_snapshot(snapshot, old, layout)
        else:
            write_prepared(tmp_path / "old" / "ids.parquet", [("k", s, w) for s, w in old])
            made = sorted_diff.sort_and_merge(
                tmp_path / "old" / "ids.parquet", (E, P), None, tmp_path / "old"
            )
            assert made is not None
            made.wait()
            snapshot.parent.mkdir(parents=True)
            made.current_ids_path.rename(snapshot)
        with connect(tmp_path / name / "work") as con:
            plans[name] = plan_audience(
                con,
                prepared_glob=str(tmp_path / "ids.parquet"),
                snapshot=snapshot,
                id_schemas=(E, P),
                mode=mode,
                work_dir=tmp_path / name / "work",
            )
    earlier, fresh = plans["earlier"], plans["sorted"]
    assert _plan_files(tmp_path / "earlier" / "work") == _plan_files(tmp_path / "sorted" / "work")
    assert (earlier.add_ids, earlier.remove_ids, earlier.current_ids, earlier.previous_ids) == (
        fresh.add_ids,
        fresh.remove_ids,
        fresh.current_ids,
        fresh.previous_ids,
    )
    expected_adds = 2 * len({w for _, _, w in new} - {w for _, w in old})
    assert fresh.add_ids == expected_adds
    expected_removes = 2 * len({w for _, w in old} - {w for _, _, w in new})
    assert fresh.remove_ids == (0 if mode is SyncMode.APPEND else expected_removes)
    # A mirror plan commits its sorted set in place of the earlier release's snapshot: the next re-sync
    # merges. An append commits the union of both (DuckDB), which the next plan finds unsorted.
    size = commit_plan_snapshot(earlier, tmp_path / "earlier" / "snapshot.parquet", tmp_path / "commit")
    assert size == distinct_ids(tmp_path / "earlier" / "snapshot.parquet")
    again = sorted_diff.sort_and_merge(
        tmp_path / "ids.parquet", (E, P), tmp_path / "earlier" / "snapshot.parquet", tmp_path / "again"
    )
    assert again is not None
    assert again.merged is (mode is SyncMode.MIRROR)
    assert sum(len(a) for a in again.adds.values()) == 0
    assert sum(len(r) for r in again.removes.values()) == 0


def test_md5_digests_are_left_to_duckdb(tmp_path: Path) -> None:
    table = pa.table(
        [pa.array(["1"]), pa.array(["MD5"]), *(pa.array([v], pa.uint64()) for v in (1, 2, None, None))],
        schema=IDS_SCHEMA,
    )
    pq.write_table(table, tmp_path / "ids.parquet")
    assert sorted_diff.sort_and_merge(tmp_path / "ids.parquet", ("MD5",), None, tmp_path) is None
    assert not (tmp_path / "current_ids.parquet").exists()
