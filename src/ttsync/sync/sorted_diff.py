"""The re-sync diff as a sort and a merge: the new set sorted by its digest words, merged with a sorted snapshot.

A hash join against the snapshot rebuilds a table of every identifier on each re-sync (2.7 s of CPU at 10M).
Instead the plan sorts the new set (a compiled radix sort, `_groups.radix_scatter` and `sort_buckets`), writes
it sorted as the snapshot to be (`current_ids.parquet`: `id_schema` blocks in name order, each sorted by
k1..k4), and merges it with the snapshot in one linear pass (`_groups.merge_sorted`), reading the snapshot a
row group at a time. Only the identifiers that changed leave the merge: the added ones with their row's
position in the prepared file (for its row key), the removed ones with their words.

Memory: the new set of one id schema is held as 40-byte records (400 MB at 10M identifiers); the snapshot
and the prepared file are streamed. Not used (the caller keeps the DuckDB diff) when the kernel was not built,
or for MD5 digests (null k3, k4). A snapshot written unsorted (by an earlier release, an append or a capped
delivery) is found out by the merge itself; the caller then diffs it with DuckDB, and the snapshot this plan
commits is sorted again.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.identity.digests import KEY_COLUMNS
from ttsync.sync.prepare import DIGESTS_SCHEMA, DISTINCT_IDS_KEY, PEOPLE_KEY, read_footer

try:
    from ttsync.sync import _groups
except ImportError:  # not built: plan.py keeps the DuckDB diff
    _groups = None  # type: ignore[assignment]

RECORD = np.dtype([("k1", "<u8"), ("k2", "<u8"), ("k3", "<u8"), ("k4", "<u8"), ("idx", "<u8")])
SORTED_KEY = "ttsync.sorted_by"  # footer key of a sorted digests file (informational: the merge checks order)
_WRITE_ROWS = 1 << 18  # rows per row group of the sorted set: the writer thread buffers one (8 MB of words)
_WRITE_SCHEMA = pa.schema(
    [pa.field("id_schema", pa.dictionary(pa.int32(), pa.string())), *list(DIGESTS_SCHEMA)[1:]]
)


@dataclass
class SortedDiff:
    """The result of `sort_and_merge`."""

    current_ids_path: Path  # the new set, sorted (the snapshot to be)
    distinct_ids: dict[str, int]  # distinct identifiers per id schema in it
    merged: bool  # False: the snapshot was not sorted (or there was none); adds and removes were not computed
    # Added identifiers (every prepared row holding one) and removed ones, when merged.
    adds: dict[str, np.ndarray] = field(default_factory=dict)  # RECORD rows: words and the row's ordinal
    removes: dict[str, np.ndarray] = field(default_factory=dict)  # (n, 4) uint64 words
    pending: Future[None] | None = None  # the end of the file's writing

    def wait(self) -> None:
        """Wait until `current_ids_path` is written (raises what the writing raised)."""
        if self.pending is not None:
            self.pending.result()


def available() -> bool:
    """Whether the compiled sort and merge were built."""
    return _groups is not None


def sort_and_merge(
    ids_path: Path, schemas: tuple[str, ...], snapshot: Path | None, work_dir: Path
) -> SortedDiff | None:
    """Write the identifiers of `schemas` in `ids_path` sorted to `work_dir/current_ids.parquet` and, given a
    snapshot with words, merge each id schema with it. None (nothing written) when a digest is not SHA-256
    or the kernel is missing."""
    if not available():
        return None
    ids = _open(ids_path)
    if any(k not in ids.schema_arrow.names for k in KEY_COLUMNS):
        return None
    if snapshot is not None and "k1" not in pq.read_schema(snapshot).names:
        snapshot = None  # the older hex layout: DuckDB derives its words (this plan still writes them sorted)
    # The sort's records come from the OS: first hand back what the prepare stage left free in Arrow's pools
    # (tens of ms), so the plan's peak is the records, not the records on top of that.
    pa.default_memory_pool().release_unused()
    pa.system_memory_pool().release_unused()
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "current_ids.parquet"
    path.unlink(missing_ok=True)  # a new file (inode): a committed snapshot may be a link to an earlier one
    result = SortedDiff(current_ids_path=path, distinct_ids={}, merged=snapshot is not None)
    snap = _open(snapshot) if snapshot is not None else None
    footer = {SORTED_KEY: "id_schema," + ",".join(KEY_COLUMNS)}
    prepared = read_footer(ids_path)
    if prepared.people is not None and set(prepared.distinct_ids or {}) <= set(schemas):
        footer[PEOPLE_KEY] = str(prepared.people)
    # Written as prepare.py writes digests (see _digest_writer); id_schema goes in as a dictionary (one name
    # per block), without the Arrow schema in the footer, so every reader sees a string column as before.
    out = pq.ParquetWriter(
        path,
        _WRITE_SCHEMA,
        compression={"id_schema": "zstd"} | dict.fromkeys(KEY_COLUMNS, "none"),
        use_dictionary=["id_schema"],
        write_statistics=["id_schema"],
        store_schema=False,
    )
    # The file is written by a thread of its own while the merge runs (both release the GIL); the last
    # write and the footer finish while the plan reads row keys (`SortedDiff.wait`).
    writer = ThreadPoolExecutor(1, thread_name_prefix="ttsync-plan-write")
    writing: Future[None] | None = None
    try:
        for schema in sorted(schemas):
            if writing is not None:
                writing.result()  # one id schema's records in memory at a time
            records = _sorted_records(ids_path, schema)
            if records is None:
                return None
            result.distinct_ids[schema] = _groups.distinct_sorted(records, len(records))
            writing = writer.submit(_write_records, out, schema, records)
            if snap is not None and result.merged:
                merged = _merge(records, snap, schema)
                if merged is None:
                    result.merged, result.adds, result.removes = False, {}, {}
                else:
                    result.adds[schema], result.removes[schema] = merged
            del records
        footer[DISTINCT_IDS_KEY] = json.dumps(result.distinct_ids, sort_keys=True)
        result.pending = writer.submit(_close, out, footer)
        return result
    finally:
        if result.pending is None:  # failed or not applicable: no file
            writer.submit(out.close)
            writer.shutdown(wait=True)
            path.unlink(missing_ok=True)
        else:
            writer.shutdown(wait=False)


def _close(out: pq.ParquetWriter, footer: dict[str, str]) -> None:
    out.add_key_value_metadata(footer)
    out.close()


def row_keys(ids_path: Path, wanted: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """The row keys of the rows of each id schema at the given ordinals (positions among that schema's rows in
    the prepared file, any order), read a row group at a time."""
    ids = _open(ids_path)
    order = {s: np.argsort(ords, kind="stable") for s, ords in wanted.items()}
    sorted_ords = {s: wanted[s][order[s]] for s in wanted}
    found: dict[str, list[pa.Array]] = {s: [] for s in wanted}
    seen = dict.fromkeys(wanted, 0)
    for schema, ords in sorted_ords.items():
        for table in _row_groups(ids, schema, ["row_key"]):
            keys = table.column("row_key")
            lo, hi = np.searchsorted(ords, [seen[schema], seen[schema] + len(keys)])
            if hi > lo:
                found[schema].append(keys.take(pa.array(ords[lo:hi] - seen[schema])).combine_chunks())
            seen[schema] += len(keys)
    result = {}
    for schema, parts in found.items():
        keys = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
        # Back to the caller's order.
        result[schema] = keys.take(pa.array(np.argsort(order[schema], kind="stable")))
    return result


def _open(path: Path) -> pq.ParquetFile:
    # id_schema as a dictionary: a handful of names, not one string per row, to decode.
    return pq.ParquetFile(path, read_dictionary=["id_schema"])


def _row_groups(
    file: pq.ParquetFile, schema: str, columns: list[str], groups: range | None = None
) -> Iterator[pa.Table]:
    """`columns` of the rows of one id schema, a row group at a time. A row group whose statistics say it
    holds only that schema (the usual case) is read without its id_schema column; one without it, skipped."""
    index = file.schema_arrow.get_field_index("id_schema")
    for group in range(file.num_row_groups) if groups is None else groups:
        stats = file.metadata.row_group(group).column(index).statistics
        if stats is not None and stats.has_min_max and not stats.null_count:
            if stats.min == stats.max == schema:
                yield file.read_row_group(group, columns=columns)
                continue
            if not stats.min <= schema <= stats.max:
                continue
        table = file.read_row_group(group, columns=[*columns, "id_schema"])
        names = table.column("id_schema").combine_chunks()
        if isinstance(names, pa.DictionaryArray):
            known = names.dictionary.to_pylist()
            if schema not in known:
                continue
            mask = pc.equal(names.indices, known.index(schema))
        else:
            mask = pc.equal(names, schema)
        yield table.filter(pc.fill_null(mask, False)).select(columns)


_Words = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _words(table: pa.Table) -> _Words | None:
    """k1..k4 as contiguous uint64 arrays; None when any is null (an MD5 digest)."""
    if any(table.column(name).null_count for name in KEY_COLUMNS):
        return None
    k1, k2, k3, k4 = (np.ascontiguousarray(table.column(k).to_numpy(), dtype=np.uint64) for k in KEY_COLUMNS)
    return k1, k2, k3, k4


def _sorted_records(path: Path, schema: str) -> np.ndarray | None:
    """The rows of one id schema as records sorted by their words, `idx` their ordinal among that schema's rows;
    None when a word is null. Two passes over the file: a histogram of k1's top bits, then the scatter; each
    pass, and the sort of the buckets, by two threads on halves of the file (all release the GIL; each
    thread's records go to slots of their own)."""
    file = _open(path)
    rows, row_groups = file.metadata.num_rows, file.num_row_groups
    bits = max(1, min(20, (rows // 32).bit_length()))  # ~16-32 records a bucket: each sorts in cache
    shift, buckets = 64 - bits, 1 << bits
    halves = [range(0, row_groups // 2), range(row_groups // 2, row_groups)]

    def histogram(groups: range) -> np.ndarray:
        counts = np.zeros(buckets, dtype=np.int64)
        for table in _row_groups(_open(path), schema, ["k1"], groups):
            k1 = table.column("k1").to_numpy()  # a null is found by the scatter (none from prepare)
            counts += np.bincount((k1 >> np.uint64(shift)).astype(np.int64), minlength=buckets)
        return counts

    def scatter(groups: range, slots: np.ndarray, first: int) -> bool:
        for table in _row_groups(_open(path), schema, list(KEY_COLUMNS), groups):
            words = _words(table)
            if words is None:
                return False
            n = len(words[0])
            _groups.radix_scatter(words[0], words[1], words[2], words[3], n, first, shift, slots, records)
            first += n
        return True

    with ThreadPoolExecutor(2, thread_name_prefix="ttsync-plan-sort") as pool:
        counts = list(pool.map(histogram, halves))
        starts = np.zeros(buckets + 1, dtype=np.uint64)
        np.cumsum(counts[0] + counts[1], out=starts[1:])
        records = _anonymous(int(starts[-1]))
        # The second half's records of each bucket follow the first half's.
        slots = [starts[:-1].copy(), starts[:-1] + counts[0].astype(np.uint64)]
        if not all(pool.map(scatter, halves, slots, [0, int(counts[0].sum())])):
            return None
        middle = buckets // 2
        bucket_halves = [(starts[: middle + 1], middle), (starts[middle:], buckets - middle)]
        list(pool.map(lambda half: _groups.sort_buckets(records, *half), bucket_halves))
    return records


def _anonymous(rows: int) -> np.ndarray:
    """Records in anonymous memory of their own: numpy asks for huge pages on big arrays, and the kernel's
    compaction for them cost more than the sort (0.3-1 s per 400 MB here); freed as a whole."""
    if rows == 0:
        return np.empty(0, dtype=RECORD)
    # MAP_POPULATE: the pages are mapped in one call instead of one fault each (half the CPU of the touch).
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return np.frombuffer(mmap.mmap(-1, rows * RECORD.itemsize, flags=flags), dtype=RECORD)


def _write_records(out: pq.ParquetWriter, schema: str, records: np.ndarray) -> None:
    names = pa.array([schema])
    for start in range(0, len(records), _WRITE_ROWS):
        chunk = records[start : start + _WRITE_ROWS]
        indices = pa.array(np.zeros(len(chunk), dtype=np.int32))
        arrays = [pa.DictionaryArray.from_arrays(indices, names)]
        arrays += [pa.array(np.ascontiguousarray(chunk[k])) for k in KEY_COLUMNS]
        out.write_batch(pa.RecordBatch.from_arrays(arrays, schema=_WRITE_SCHEMA))


def _merge(
    records: np.ndarray, snapshot: pq.ParquetFile, schema: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(added records, removed words) of one id schema; None when the snapshot is not sorted or holds MD5s."""
    state = np.zeros(6, dtype=np.uint64)
    added: list[np.ndarray] = []
    removed: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)]
    empty = np.zeros(0, dtype=np.uint64)
    for table in _row_groups(snapshot, schema, list(KEY_COLUMNS)):
        words = _words(table)
        if words is None:
            return None
        k1, k2, k3, k4 = words
        step = _groups.merge_sorted(records, len(records), state, k1, k2, k3, k4, len(k1), False)
        if step is None:
            return None
        added.append(np.frombuffer(step[0], dtype=np.uint64))
        removed.append(np.frombuffer(step[1], dtype=np.uint64))
    step = _groups.merge_sorted(records, len(records), state, empty, empty, empty, empty, 0, True)
    assert step is not None  # an empty chunk is always in order
    added.append(np.frombuffer(step[0], dtype=np.uint64))
    positions = np.concatenate(added).astype(np.intp)
    return records[positions], np.concatenate(removed).reshape(-1, 4)
