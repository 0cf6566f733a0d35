"""Prepare stage: stream warehouse batches through the identity rules into Parquet files of hashes.

Memory stays bounded: one batch at a time goes in, and prepared identifiers and rejections are appended to
Parquet writers. Only digests, row keys and reason codes are written; raw values never leave this function.
Row keys that look like identifiers (an e-mail used as `key_column`) are keyed-hashed first
(`ttsync.identity.rowkeys`), so the files hold no personal data in their row keys either.
Digests are stored as four 64-bit integers (see digests.py). The file's footer records the distinct
identifiers per id schema and the people with at least one identifier (from the match report), so planning
does not count 10M rows again. The digests-only set that becomes the snapshot is written by the plan, sorted
(sorted_diff.py); earlier releases wrote it here (`digests.parquet`, which Spark's prepare still writes).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttsync.errors import ConfigError
from ttsync.identity import ColumnSpec, MatchReport, Preparer
from ttsync.identity.digests import DIGEST_FIELDS, KEY_COLUMNS, digest_keys
from ttsync.identity.rowkeys import KeyHasher

try:
    from ttsync.sync import _groups
except ImportError:  # not built (no compiler at install time): digest_keys decodes the same words
    _groups = None  # type: ignore[assignment]

_T = TypeVar("_T")

IDS_SCHEMA = pa.schema([("row_key", pa.string()), ("id_schema", pa.string()), *DIGEST_FIELDS])
# The same identifiers without row keys: the audience's new set, which becomes its snapshot (hashes only).
DIGESTS_SCHEMA = pa.schema([("id_schema", pa.string()), *DIGEST_FIELDS])
# Footer keys (Parquet key-value metadata) of both files; a snapshot linked to the digests file keeps them.
DISTINCT_IDS_KEY = "ttsync.distinct_ids"  # JSON {id_schema: distinct identifiers}
PEOPLE_KEY = "ttsync.people"  # rows with at least one identifier
REJECTS_SCHEMA = pa.schema([("row_key", pa.string()), ("column", pa.string()), ("reason", pa.string())])
# The row key as stored (a string; keyed-hashed when it looks like an identifier) travels in a column of its
# own: the key column may also be an identifier column, whose raw values the identity rules still need.
ROW_KEY_FIELD = "__ttsync_row_key"


@dataclass(frozen=True)
class PreparedOutput:
    """Where the prepared identifiers and rejections were written, and the match-quality report."""

    ids_path: Path
    digests_path: Path | None  # the digests without row keys (Spark's prepare); None: the plan writes them
    rejects_path: Path
    rows_read: int
    ids_written: int
    rejects_written: int
    report: MatchReport


def prepare_to_parquet(
    batches: Iterable[pa.RecordBatch],
    *,
    specs: Sequence[ColumnSpec],
    key_column: str,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
    key_hasher: KeyHasher | None = None,
    make_preparer: Callable[[str], Preparer] | None = None,
) -> PreparedOutput:
    """Run the identity rules over every batch; write `ids.parquet` (row keys and digests) and
    `rejects.parquet` in `out_dir`.

    `key_hasher` replaces identifier-looking row keys (the workspace's key in a run; default: a random key,
    which keeps row keys consistent within this call only). `make_preparer(key_column)` builds the preparer
    (default: a `Preparer` of `specs`; hashing in the warehouse passes a `PushdownPreparer`)."""
    key_hasher = key_hasher or KeyHasher.ephemeral()
    out_dir.mkdir(parents=True, exist_ok=True)
    ids_path, rejects_path = out_dir / "ids.parquet", out_dir / "rejects.parquet"
    # New files, never rewritten in place: a committed snapshot may be a hard link to an earlier one (and
    # the digests file of an earlier release's run in this folder must not be taken for this run's).
    ids_path.unlink(missing_ok=True)
    (out_dir / "digests.parquet").unlink(missing_ok=True)
    rows = ids_written = rejects_written = 0
    with (
        _digest_writer(ids_path, IDS_SCHEMA) as ids_out,
        pq.ParquetWriter(rejects_path, REJECTS_SCHEMA, compression="zstd") as rejects_out,
        _Background() as background,
    ):

        def write_ids(ids: pa.RecordBatch) -> None:
            ids_out.write_batch(ids_batch(ids))

        # The preparer owns threads and DuckDB connections.
        made = (
            make_preparer(ROW_KEY_FIELD) if make_preparer else Preparer(list(specs), key_column=ROW_KEY_FIELD)
        )
        # process_stream reads the next batch before it yields this one's result (its chunks start meanwhile):
        # what each batch brings besides its rows waits here, in order, for its result.
        read: deque[tuple[int, pa.RecordBatch]] = deque()

        def keyed() -> Iterator[pa.RecordBatch]:
            first_row = 0
            for raw_batch in batches:
                batch, missing_keys = _with_string_key(raw_batch, key_column, key_hasher, first_row=first_row)
                first_row += raw_batch.num_rows
                read.append((raw_batch.num_rows, missing_keys))
                yield batch

        with made as preparer:
            for prepared in preparer.process_stream(keyed()):
                raw_rows, missing_keys = read.popleft()
                if missing_keys.num_rows:
                    background.submit(rejects_out.write_batch, missing_keys)
                    rejects_written += missing_keys.num_rows
                if prepared.ids.num_rows:
                    background.submit(write_ids, prepared.ids)
                    ids_written += prepared.ids.num_rows
                if prepared.rejects.num_rows:
                    rejects = prepared.rejects.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA)
                    background.submit(rejects_out.write_batch, rejects)
                    rejects_written += prepared.rejects.num_rows
                rows += raw_rows
                if progress is not None:
                    progress(raw_rows)
        background.drain()
        report = preparer.report()  # after close: the duplicate counts are final and counted once
        ids_out.add_key_value_metadata(footer_metadata(report))
    return PreparedOutput(
        ids_path=ids_path,
        digests_path=None,
        rejects_path=rejects_path,
        rows_read=rows,
        ids_written=ids_written,
        rejects_written=rejects_written,
        report=report,
    )


def _digest_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # Digest words are random: compressing them only costs time. So do their min/max statistics (they
    # span the whole range, so no reader can skip a row group by them) and the row keys' (a string min/max
    # per page; nothing filters on row key ranges): about 0.6 s of CPU per 10M identifiers.
    compression = {"row_key": "zstd", "id_schema": "zstd"} | dict.fromkeys(KEY_COLUMNS, "none")
    return pq.ParquetWriter(
        path,
        schema,
        compression={k: v for k, v in compression.items() if k in schema.names},
        use_dictionary=["id_schema"],
        write_statistics=["id_schema"],
    )


def ids_batch(ids: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    """Prepared identifiers (`row_key`, `id_schema`, hex `hash`) in the stored layout (digests as k1..k4)."""
    keys = hex_digest_words(
        ids.column("hash").combine_chunks() if isinstance(ids, pa.Table) else ids.column("hash")
    )
    columns = [pc.cast(ids.column("row_key"), pa.string()), pc.cast(ids.column("id_schema"), pa.string())]
    return pa.RecordBatch.from_arrays(
        [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns] + keys,
        schema=IDS_SCHEMA,
    )


def hex_digest_words(hashes: pa.Array) -> list[pa.Array]:
    """`digest_keys` of a hex digest column (k1..k4), in one compiled pass when every value is a SHA-256 hex
    digest (the common case) and the kernel was built; the generic decoder otherwise (MD5, nulls, errors)."""
    if _groups is not None and len(hashes) and not hashes.null_count and pa.types.is_string(hashes.type):
        _, offsets, data = hashes.buffers()
        raw = _groups.hex_words(offsets, data if data is not None else b"", hashes.offset, len(hashes))
        if raw is not None:
            n, buffer = len(hashes), pa.py_buffer(raw)
            return [
                pa.Array.from_buffers(pa.uint64(), n, [None, buffer.slice(8 * n * i, 8 * n)])
                for i in range(4)
            ]
    return digest_keys(hashes)


def footer_metadata(report: MatchReport) -> dict[str, str]:
    """Distinct identifiers per id schema and matchable people, for the prepared file's footer."""
    distinct = {t.id_schema: t.valid - t.duplicates for t in report.types}
    return {DISTINCT_IDS_KEY: json.dumps(distinct, sort_keys=True), PEOPLE_KEY: str(report.people_matchable)}


def _with_string_key(
    batch: pa.RecordBatch, key_column: str, key_hasher: KeyHasher, *, first_row: int
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The batch with its row keys as strings in `ROW_KEY_FIELD` (identifier-looking keys replaced by their
    keyed hash), minus rows without a key (returned as rejections by position)."""
    index = batch.schema.get_field_index(key_column)
    if index < 0:
        raise ConfigError(
            f"key column {key_column!r} is not in the query's result; set `key_column` on the orchestration to "
            f"one of: {', '.join(batch.schema.names)}"
        )
    column = batch.column(index)
    missing = pa.RecordBatch.from_pylist([], schema=REJECTS_SCHEMA)
    if column.null_count:
        # A row without a key cannot be traced or diffed: reject it by its position in the result.
        positions = pc.indices_nonzero(pc.is_null(column)).to_pylist()
        missing = pa.RecordBatch.from_pydict(
            {
                "row_key": [f"#row{first_row + p}" for p in positions],
                "column": [key_column] * len(positions),
                "reason": ["missing_key"] * len(positions),
            },
            schema=REJECTS_SCHEMA,
        )
        batch = batch.filter(pc.is_valid(column))
        column = batch.column(index)
    original = column
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    keys = key_hasher.protect(column, original)
    existing = batch.schema.get_field_index(ROW_KEY_FIELD)
    if existing >= 0:
        return batch.set_column(existing, ROW_KEY_FIELD, keys), missing
    return batch.append_column(ROW_KEY_FIELD, keys), missing


class _Background:
    """One thread that converts and writes prepared batches, in order, while the next batch is prepared (the
    preparer's workers leave about a third of two cores idle). At most `depth` batches wait, so memory stays
    bounded; the first failure is raised in the caller's thread."""

    def __init__(self, depth: int = 2) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ttsync-prepare-write")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, fn: Callable[[_T], None], item: _T) -> None:
        """Run `fn(item)` after everything submitted before it."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, item))

    def drain(self) -> None:
        """Wait for everything submitted (raises the first failure)."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class Footer:
    """What a prepared file's footer says about its contents (None when the file has no such footer)."""

    distinct_ids: dict[str, int] | None
    people: int | None


def read_footer(path: Path) -> Footer:
    """The counts `prepare_to_parquet` wrote into the footer of `path` (only the footer is read)."""
    metadata = pq.read_metadata(path).metadata or {}
    distinct = metadata.get(DISTINCT_IDS_KEY.encode())
    people = metadata.get(PEOPLE_KEY.encode())
    return Footer(
        distinct_ids={str(k): int(v) for k, v in json.loads(distinct).items()} if distinct else None,
        people=int(people) if people else None,
    )
