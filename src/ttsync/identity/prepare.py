"""Vectorized preparation: Arrow record batches in, (row key, id schema, hash) and rejects out.

Per batch and column: split multi-value cells, drop nulls, reject blanks, run the kind's vectorized
normalization (ttsync.identity.kinds / phone_fast), send what it cannot decide to the scalar
reference, then hash: SHA-256 by the compiled kernel straight into one digest array per column
(kernels.DigestWriter; raw emails are checked and hashed in the same compiled pass), otherwise and for
MD5 with DuckDB's sha256()/md5(). Batches are split across worker threads (Arrow
kernels and DuckDB release the GIL). Each batch is cut into chunks of at most `CHUNK_ROWS` rows that the
workers pull one at a time, so both cores stay busy until the batch's last chunk (halves, one per
worker, left a core idle whenever one half was slower). Each worker does everything per-row for its
chunk — hashing, taking row keys, counting rejects, recording duplicate keys, counting matchable rows —
so the calling thread only concatenates and adds up counters; `process_stream` has the next batch's
chunks running while it does that. Nothing but the report's fixed-size counters (and
the duplicate counter's keys, on disk) outlives a batch. Cell splitting, the scalar fallback and
hashing are in `values.py`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ttsync.identity import kinds
from ttsync.identity.arrowutil import Outcome, arange, concat, fill_false, repeat
from ttsync.identity.coltypes import as_text
from ttsync.identity.duplicates import DuplicateCounter
from ttsync.identity.kernels import DigestWriter
from ttsync.identity.phone_fast import narrow_digits, parse_phones
from ttsync.identity.reasons import Reason
from ttsync.identity.report import AutoDecision, MatchReport, TypeStats
from ttsync.identity.spec import MAID_KINDS, ColumnSpec
from ttsync.identity.values import (
    Hasher,
    decide_deferred,
    flatten,
    identifier_texts,
    is_list,
    prepare_value,
    remap,
)

__all__ = ["PreparedBatch", "Preparer", "identifier_texts", "prepare_value"]

IDS_SCHEMA = pa.schema([("row_key", pa.string()), ("id_schema", pa.string()), ("hash", pa.string())])
REJECTS_SCHEMA = pa.schema([("row_key", pa.string()), ("column", pa.string()), ("reason", pa.string())])
AUTO_THRESHOLD = 0.9  # share of sampled values that must look hashed for `auto` to pick a hash state
# Rows per unit of work for a worker thread. Output does not depend on it beyond the order of rows in a
# batch's output (chunk by chunk); small enough that the last chunk of a batch leaves little idle time,
# large enough that the per-chunk Python overhead (~0.3 ms) stays a few ns per row.
CHUNK_ROWS = 65_536


@dataclass
class PreparedBatch:
    """What one input batch became: identifiers and rejections (row keys and reason codes only)."""

    ids: pa.RecordBatch  # row_key: string, id_schema: string, hash: string
    rejects: pa.RecordBatch  # row_key: string, column: string, reason: string


@dataclass
class _ColumnResult:
    """One column of one chunk, fully prepared by a worker thread."""

    spec: ColumnSpec
    id_schema: str
    ok_keys: pa.Array  # row key of each valid identifier
    hashes: pa.Array
    region: DigestWriter | None  # the region of the batch's shared digest buffers holding `hashes`, if any
    bad_keys: pa.Array  # row key of each rejected value
    bad_reasons: pa.Array
    present: int
    valid: int
    rejected: dict[str, int]  # reason code -> count


@dataclass
class _Work:
    """One chunk of a batch for a worker thread: its rows, their keys, per column (by spec index) the
    region of the batch's shared digest buffers its digests go to, and the hash state of each column
    when the batch was submitted (a later batch may decide an `auto` column while this one runs)."""

    batch: pa.RecordBatch
    keys: pa.Array
    regions: dict[int, DigestWriter]
    states: dict[str, str]


@dataclass
class _SliceResult:
    columns: list[_ColumnResult]
    matchable: int  # rows of the chunk with at least one valid identifier


@dataclass
class _Pending:
    """A submitted batch: its chunks running (or done), everything needed to join their results."""

    batch: pa.RecordBatch  # as given
    rows: int  # rows with a key
    rejects: list[pa.RecordBatch]  # rows without a key
    shared: dict[int, DigestWriter]  # batch-wide digest buffers per spec index
    results: list[Future[_SliceResult] | _SliceResult]  # per chunk, in row order


class Preparer:
    """Prepares a stream of record batches by column specs; keeps the match report.

    specs: the identifier columns. key_column: the column holding each row's key (cast to string).
    workers: threads per batch (default: min(2, CPUs)). decided: `auto` columns already decided elsewhere
    (Spark decides once on the driver, so every partition reads a column the same way).
    """

    def __init__(
        self,
        specs: Sequence[ColumnSpec],
        key_column: str = "row_key",
        *,
        workers: int | None = None,
        auto_sample: int = 1000,
        decided: Sequence[AutoDecision] = (),
    ) -> None:
        if not specs:
            raise ValueError("at least one column spec is needed")
        self.specs = list(specs)
        self.key_column = key_column
        self.workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
        self.auto_sample = auto_sample
        self._hasher = Hasher()
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self._states: dict[str, str] = {s.column: s.hash_state for s in self.specs if s.hash_state != "auto"}
        self._auto: dict[str, AutoDecision] = {}
        for decision in decided:
            self._states[decision.column] = decision.decided
            self._auto[decision.column] = decision.model_copy(update={"not_fitting": 0})
        self._types: dict[str, TypeStats] = {}
        self._duplicates = DuplicateCounter()
        self._people = 0
        self._matchable = 0

    # ---- public API -------------------------------------------------------------------------

    def process(self, batch: pa.RecordBatch) -> PreparedBatch:
        """Prepare one batch."""
        return self._finish(self._submit(batch))

    def process_stream(self, batches: Iterable[pa.RecordBatch]) -> Generator[PreparedBatch, None, None]:
        """Prepare batches in order, one output per input batch, the same outputs and report as `process`
        on each: the next batch is read and its chunks start before this one's results are joined and
        yielded, so the workers do not wait for the calling thread between batches (two batches are in
        memory at a time). Leaving the loop early still waits for the chunks already started."""
        pending: deque[_Pending] = deque()
        try:
            for batch in batches:
                pending.append(self._submit(batch))
                if len(pending) > 1:
                    yield self._finish(pending.popleft())
            while pending:
                yield self._finish(pending.popleft())
        finally:
            for left in pending:  # abandoned: let the started chunks end before the caller goes on
                for result in left.results:
                    if isinstance(result, Future) and not result.cancel():
                        result.exception()

    def report(self) -> MatchReport:
        """The match report so far."""
        duplicates = self._duplicates.counts()
        types = [
            stats.model_copy(update={"duplicates": duplicates.get(schema, 0)})
            for schema, stats in self._types.items()
        ]
        share = self._matchable / self._people if self._people else 0.0
        return MatchReport(
            people=self._people,
            people_matchable=self._matchable,
            share_matchable=share,
            types=types,
            auto=list(self._auto.values()),
        )

    def close(self) -> None:
        """Stop the worker threads and release the duplicate counter (report() still works)."""
        if self._pool is not None:
            self._pool.shutdown()
        self._duplicates.close()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals --------------------------------------------------------------------------

    def _submit(self, batch: pa.RecordBatch) -> _Pending:
        """Check a batch, cut it into chunks and start them on the workers (without workers: run them)."""
        given = batch
        if self.key_column not in batch.schema.names:
            raise ValueError(f"the batch has no key column {self.key_column!r}")
        for spec in self.specs:
            for name in (spec.column, spec.region_column):
                if name is not None and name not in batch.schema.names:
                    raise ValueError(f"the batch has no column {name!r}")
        keys = as_text(self.key_column, batch.column(self.key_column), "key")
        missing = pc.is_null(keys)
        rejects: list[pa.RecordBatch] = []
        if keys.null_count:
            n_missing = keys.null_count
            rejects.append(
                pa.record_batch(
                    [
                        pa.nulls(n_missing, pa.string()),
                        repeat(self.key_column, n_missing),
                        repeat(Reason.MISSING_KEY.value, n_missing),
                    ],
                    schema=REJECTS_SCHEMA,
                )
            )
            batch = batch.filter(pc.invert(missing))
            keys = pc.filter(keys, pc.invert(missing))
        self._decide_auto(batch)
        states = {spec.column: self._state(spec) for spec in self.specs}
        chunks = self._chunks(batch)
        offsets = [0]
        for piece in chunks[:-1]:
            offsets.append(offsets[-1] + piece.num_rows)
        # One pair of digest buffers per SHA-256 column for the whole batch, a region of it per chunk:
        # the workers write the digests in place, and the calling thread only closes the gaps
        # (concatenating per-chunk arrays was its largest cost, with the workers idle).
        shared = {
            i: w for i, spec in enumerate(self.specs) if (w := self._shared_writer(batch, spec, states))
        }
        work = [
            _Work(
                piece,
                keys.slice(offset, piece.num_rows),
                {i: w.region(offset, piece.num_rows) for i, w in shared.items()},
                states,
            )
            for piece, offset in zip(chunks, offsets, strict=True)
        ]
        results: list[Future[_SliceResult] | _SliceResult]
        if self._pool is not None:
            # Submitted in row order: the workers pull them first come, first served (and the next
            # batch's chunks after this one's).
            results = [self._pool.submit(self._process_slice, w) for w in work]
        else:
            results = [self._process_slice(w) for w in work]
        return _Pending(batch=given, rows=batch.num_rows, rejects=rejects, shared=shared, results=results)

    def _finish(self, pending: _Pending) -> PreparedBatch:
        """Wait for a submitted batch's chunks; join their results into its output; count the report."""
        results = [r.result() if isinstance(r, Future) else r for r in pending.results]
        rejects, shared = pending.rejects, pending.shared
        id_keys: list[pa.Array] = []
        id_schemas: list[pa.Array] = []
        id_hashes: list[pa.Array] = []
        reject_keys: list[pa.Array] = [r.column(0) for r in rejects]
        reject_columns: list[pa.Array] = [r.column(1) for r in rejects]
        reject_reasons: list[pa.Array] = [r.column(2) for r in rejects]
        for result in results:
            self._matchable += result.matchable
        # Column by column, chunks in order within each: a row's identifiers keep the order of the specs.
        for i, spec in enumerate(self.specs):
            column = [result.columns[i] for result in results]
            valid = 0
            for res in column:
                self._account(res)
                valid += len(res.ok_keys)
                id_keys.append(res.ok_keys)
                if len(res.bad_keys):
                    reject_keys.append(res.bad_keys)
                    reject_columns.append(repeat(spec.column, len(res.bad_keys)))
                    reject_reasons.append(res.bad_reasons)
            if valid:
                id_schemas.append(repeat(column[0].id_schema, valid))
                writer = shared.get(i)
                if writer is not None:
                    id_hashes.append(writer.join([r.region for r in column if r.region is not None])[0])
                else:
                    id_hashes += [res.hashes for res in column]
        self._people += pending.rows
        ids = pa.record_batch(
            [
                concat([k for k in id_keys if len(k)], pa.string()),
                concat(id_schemas, pa.string()),
                concat([h for h in id_hashes if len(h)], pa.string()),
            ],
            schema=IDS_SCHEMA,
        )
        rejected = pa.record_batch(
            [
                concat(reject_keys, pa.string()),
                concat(reject_columns, pa.string()),
                concat(reject_reasons, pa.string()),
            ],
            schema=REJECTS_SCHEMA,
        )
        return self._finished(pending.batch, PreparedBatch(ids=ids, rejects=rejected))

    def _finished(self, batch: pa.RecordBatch, prepared: PreparedBatch) -> PreparedBatch:
        """What `process` and `process_stream` give for `batch` (as given), once prepared: a subclass's hook
        (the pushdown preparer adds the warehouse's rejections)."""
        return prepared

    @staticmethod
    def _chunks(batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        """The batch cut into equal chunks of at most CHUNK_ROWS rows (zero-copy slices)."""
        n = batch.num_rows
        if n == 0:
            return [batch]
        parts = -(-n // CHUNK_ROWS)
        size = -(-n // parts)
        return [batch.slice(i * size, size) for i in range(parts)]

    def _account(self, res: _ColumnResult) -> None:
        """Add one column result's counters to the report (main thread; no per-row work)."""
        stats = self._types.get(res.id_schema)
        if stats is None:
            stats = TypeStats(id_schema=res.id_schema, columns=[])
            self._types[res.id_schema] = stats
        if res.spec.column not in stats.columns:
            stats.columns.append(res.spec.column)
        stats.present += res.present
        stats.valid += res.valid
        for reason, count in res.rejected.items():
            stats.rejected[reason] = stats.rejected.get(reason, 0) + count
            if res.spec.column in self._auto and reason in (
                Reason.NOT_SHA256_HEX,
                Reason.NOT_MD5_HEX,
                Reason.LOOKS_HASHED,
            ):
                self._auto[res.spec.column].not_fitting += count

    def _decide_auto(self, batch: pa.RecordBatch) -> None:
        """Decide each `auto` column once, on the first batch where it has non-empty values."""
        for spec in self.specs:
            if spec.hash_state != "auto" or spec.column in self._states:
                continue
            values, _ = flatten(batch.column(spec.column), spec.delimiter, spec.column)
            values = pc.drop_null(values)
            values = pc.filter(values, pc.not_equal(pc.utf8_trim_whitespace(values), ""))
            if len(values) == 0:
                continue
            sample = pc.utf8_lower(pc.utf8_trim_whitespace(values.slice(0, self.auto_sample)))
            sha = pc.sum(fill_false(pc.match_substring_regex(sample, kinds.SHA256_HEX_RE))).as_py() or 0
            md5 = pc.sum(fill_false(pc.match_substring_regex(sample, kinds.MD5_HEX_RE))).as_py() or 0
            state = "raw"
            if sha >= AUTO_THRESHOLD * len(sample):
                state = "sha256"
            elif md5 >= AUTO_THRESHOLD * len(sample) and spec.kind in MAID_KINDS:
                state = "md5"
            self._states[spec.column] = state
            self._auto[spec.column] = AutoDecision(column=spec.column, decided=state, sampled=len(sample))

    def _state(self, spec: ColumnSpec) -> str:
        """The hash state a column is read in (an `auto` column with nothing in it so far: raw)."""
        return self._states.get(spec.column) or "raw"

    @staticmethod
    def _algorithm(spec: ColumnSpec, state: str) -> str | None:
        """The hash a column's normalized values get (None: pre-hashed, checked and lowercased only)."""
        if state in ("sha256", "md5"):
            return None
        return spec.maid_hash if spec.kind in MAID_KINDS else "sha256"

    def _shared_writer(
        self, batch: pa.RecordBatch, spec: ColumnSpec, states: dict[str, str]
    ) -> DigestWriter | None:
        """Batch-wide digest buffers for a SHA-256 column with at most one value per row (each chunk's
        digests then fit in the region of its rows), else None."""
        if self._algorithm(spec, states[spec.column]) != "sha256" or spec.delimiter is not None:
            return None
        if is_list(batch.schema.field(spec.column).type):
            return None
        return DigestWriter.create(batch.num_rows)

    def _process_slice(self, work: _Work) -> _SliceResult:
        """Prepare every column of one chunk (runs in a worker thread)."""
        batch, keys = work.batch, work.keys
        columns = []
        ok_rows: list[pa.Array] = []
        one_value_per_row = len(self.specs) == 1
        for i, spec in enumerate(self.specs):
            res, rows, flattened = self._process_column(
                batch, keys, spec, work.states[spec.column], work.regions.get(i)
            )
            columns.append(res)
            ok_rows.append(rows)
            one_value_per_row = one_value_per_row and not flattened
        if one_value_per_row:
            # One column, one value per row: valid identifiers are on distinct rows.
            matchable = len(ok_rows[0])
        else:
            matchable = pc.count_distinct(concat(ok_rows, pa.int64())).as_py()
        return _SliceResult(columns=columns, matchable=matchable)

    def _process_column(
        self,
        batch: pa.RecordBatch,
        keys: pa.Array,
        spec: ColumnSpec,
        state: str,
        digests: DigestWriter | None,
    ) -> tuple[_ColumnResult, pa.Array, bool]:
        """(the prepared column, chunk row of each valid identifier, whether cells were split). `digests`:
        where the digests go (a region of the batch's shared buffers), else a writer of its own."""
        column = batch.column(spec.column)
        flattened = spec.delimiter is not None or is_list(column.type)
        values, rows = flatten(column, spec.delimiter, spec.column)
        if values.null_count:
            keep = pc.is_valid(values)
            values, rows = pc.filter(values, keep), pc.filter(rows, keep)
        region_values = None
        if spec.region_column is not None:
            region = as_text(spec.region_column, batch.column(spec.region_column), "region")
            region_values = pc.take(region, rows)
        present = len(values)
        guard_raw = spec.hash_state == "auto" and state == "raw"
        algorithm = self._algorithm(spec, state)
        # SHA-256 goes straight into one digest array (kernels.DigestWriter). Raw emails: the fast
        # rules and SHA-256 in one compiled pass; only the values it does not take (a few percent) go
        # through the rules below.
        writer = digests or (DigestWriter.create(present) if algorithm == "sha256" else None)
        taken = (
            kinds.hash_fast_emails(values, writer) if writer is not None and spec.kind == "email" else None
        )
        if taken is None:
            out = self._decide(values, region_values, spec, state, guard_raw)
        else:
            idx = arange(present)
            rest = pc.invert(taken)
            rest_regions = pc.filter(region_values, rest) if region_values is not None else None
            out = remap(
                self._decide(pc.filter(values, rest), rest_regions, spec, state, guard_raw),
                pc.filter(idx, rest),
            )
        bad_idx, bad_reason = out.bad_arrays()
        digits = algorithm is not None and spec.kind == "phone" and spec.phone_format == "digits"
        if writer is not None:
            hashes, dup_keys, ok_idx = self._digest_into(writer, out, digits)
            if taken is not None:  # the fast emails' digests come first
                ok_idx = concat([pc.filter(arange(present), taken), ok_idx], pa.int64())
        else:
            ok_idx, ok_val = out.ok_arrays()
            if digits:
                ok_val = pc.utf8_slice_codeunits(ok_val, 1)
            hashes, dup_keys = self._hasher.digest(ok_val, algorithm)
        id_schema = spec.schema_for(state)
        self._duplicates.add(id_schema, dup_keys)
        ok_rows = pc.take(rows, ok_idx)
        rejected: dict[str, int] = {}
        if len(bad_reason):
            for item in pc.value_counts(bad_reason).to_pylist():
                rejected[str(item["values"])] = int(item["counts"])
        result = _ColumnResult(
            spec=spec,
            id_schema=id_schema,
            ok_keys=pc.take(keys, ok_rows),
            hashes=hashes,
            region=digests,
            bad_keys=pc.take(keys, pc.take(rows, bad_idx)),
            bad_reasons=bad_reason,
            present=present,
            valid=len(ok_idx),
            rejected=rejected,
        )
        return result, ok_rows, flattened

    @staticmethod
    def _digest_into(writer: DigestWriter, out: Outcome, digits: bool) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(hashes, duplicate keys) of what `writer` holds followed by the outcome's normalized pieces,
        and the positions of those pieces."""
        positions = []
        for idx, values, prefix in out.ok_pieces():
            if digits:  # the `+` is dropped: from the prefix, or from each value
                if prefix:
                    prefix = prefix[1:]
                else:
                    values = pc.utf8_slice_codeunits(values, 1)
            if not writer.add(values, prefix):  # normalized values are null-free strings, one per position
                raise RuntimeError("the digest writer refused normalized values")
            positions.append(idx)
        hashes, keys = writer.finish()
        return hashes, keys, concat(positions, pa.int64())

    def _decide(
        self, values: pa.Array, region_values: pa.Array | None, spec: ColumnSpec, state: str, guard_raw: bool
    ) -> Outcome:
        """Normalize or reject each (non-null) value of one column; positions index `values`."""
        present = len(values)
        out = Outcome()
        idx = arange(present)
        # Printable ASCII (no tabs or control characters) is decided by the vectorized rules, and so are
        # phones that are printable ASCII once full-width digits are narrowed; everything else goes to the
        # scalar reference.
        empty = pc.equal(values, "")
        ascii_ok = pc.or_(fill_false(pc.ascii_is_printable(values)), empty)
        other = pc.invert(ascii_ok)
        narrowed: pa.BooleanArray | None = (
            None  # phones whose only non-ASCII characters are full-width digits
        )
        parse_values = values
        if spec.kind == "phone" and state not in ("sha256", "md5"):
            parse_values, narrowed = narrow_digits(values, other)
            if narrowed is not None:
                other = pc.and_(other, pc.invert(narrowed))
        out.defer(pc.filter(idx, other))
        sel = ascii_ok
        # Printable ASCII is blank for str.strip() when it is only spaces (tabs are not printable).
        blank = pc.or_(empty, pc.and_(ascii_ok, fill_false(pc.ascii_is_space(values))))
        out.bad(pc.filter(idx, blank), Reason.EMPTY)
        sel = pc.and_(sel, pc.invert(blank))
        if guard_raw:
            hashed = pc.and_(sel, kinds.looks_hashed(values))
            out.bad(pc.filter(idx, hashed), Reason.LOOKS_HASHED)
            sel = pc.and_(sel, pc.invert(hashed))
        if narrowed is not None:  # never blank nor hashed: they hold a digit and a non-ASCII character
            sel = pc.or_(sel, narrowed)
        sub_idx = pc.filter(idx, sel)
        sub = pc.filter(parse_values, sel)
        if state in ("sha256", "md5"):
            part = kinds.prehashed(sub, state)
        elif spec.kind == "email":
            part = kinds.emails(sub)
        elif spec.kind == "phone":
            part = parse_phones(
                sub, spec.region, pc.filter(region_values, sel) if region_values is not None else None
            )
        elif spec.kind in MAID_KINDS:
            part = kinds.maids(sub)
        else:
            part = kinds.external_ids(sub)
        out.extend(remap(part, sub_idx))
        decide_deferred(out, values, region_values, spec, state, guard_raw)
        return out
