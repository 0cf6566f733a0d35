"""One identifier column's values outside the vectorized rules: cells split into values, the scalar
reference for what the fast paths defer, and hashing (the compiled kernel or DuckDB). Used by `prepare.py`."""

from __future__ import annotations

import threading
import traceback

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.identity.arrowutil import Outcome, arange, fill_false
from ttsync.identity.coltypes import as_text, check_column_type
from ttsync.identity.digests import duplicate_keys
from ttsync.identity.email_domains import EmailDomains
from ttsync.identity.kernels import sha256_hex as kernel_sha256_hex
from ttsync.identity.reasons import InvalidIdentifier, Reason
from ttsync.identity.scalar import (
    MD5_HEX_RE,
    SHA256_HEX_RE,
    check_prehashed,
    md5_hex,
    normalize,
    normalize_region,
    sha256_hex,
)
from ttsync.identity.spec import MAID_KINDS, ColumnSpec

# What email-validator concluded about each domain the scalar fallback saw (bounded; shared by every
# preparer of the process: a verdict depends on the domain alone).
EMAIL_DOMAINS = EmailDomains()


class Hasher:
    """SHA-256 with the compiled kernel when built (kernels.py); otherwise, and for MD5 and
    pre-hashed values, per-thread DuckDB connections for sha256()/md5()/hash().

    The duplicate key of a value is the first 8 bytes of its digest, however the digest was made (the
    kernel, DuckDB, or a pre-hashed column), so one identifier arriving raw in one column and
    pre-hashed in another counts once."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _con(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = duckdb.connect(config={"threads": 1})
            self._local.con = con
        return con

    def digest(self, values: pa.Array, algorithm: str | None) -> tuple[pa.Array, pa.Array]:
        """(sha256 or md5 hex of each string, or the strings themselves if algorithm is None;
        the duplicate-counting key of each digest), in input order."""
        if len(values) == 0:
            return pa.array([], pa.string()), pa.array([], pa.uint64())
        if algorithm == "sha256":
            fast = kernel_sha256_hex(values)
            if fast is not None:
                return fast
        rel = self._con().from_arrow(pa.table({"v": values}))
        digest = f"{algorithm}(v)" if algorithm in ("sha256", "md5") else "v"
        hashes = rel.project(f"{digest} AS h").to_arrow_table().column("h").combine_chunks()
        return hashes, duplicate_keys(hashes)


def decide_deferred(
    out: Outcome,
    values: pa.Array,
    region_values: pa.Array | None,
    spec: ColumnSpec,
    state: str,
    guard_raw: bool,
) -> None:
    """Decide deferred positions with the scalar reference, one value at a time."""
    positions = out.fallback_positions()
    out.fallback = []
    if len(positions) == 0:
        return
    texts = pc.take(values, positions).to_pylist()
    regions = pc.take(region_values, positions).to_pylist() if region_values is not None else None
    ok_idx, ok_val, bad_idx, bad_reason = [], [], [], []
    # Identical values (the same junk repeated, "n/a" and friends) are decided once.
    seen: dict[tuple[str, str | None], tuple[bool, str]] = {}
    for i, (pos, text) in enumerate(zip(positions.to_pylist(), texts, strict=True)):
        region = normalize_region(regions[i] if regions is not None else None) or normalize_region(
            spec.region
        )
        key = (str(text), region)
        decided = seen.get(key)
        if decided is None:
            try:
                decided = (True, scalar_one(spec, state, guard_raw, str(text), region, EMAIL_DOMAINS))
            except InvalidIdentifier as exc:
                decided = (False, exc.reason.value)
                traceback.clear_frames(exc.__traceback__)
            seen[key] = decided
        if decided[0]:
            ok_idx.append(pos)
            ok_val.append(decided[1])
        else:
            bad_idx.append(pos)
            bad_reason.append(decided[1])
    out.ok(pa.array(ok_idx, pa.int64()), pa.array(ok_val, pa.string()))
    out.bad_each(pa.array(bad_idx, pa.int64()), pa.array(bad_reason, pa.string()))


def scalar_one(
    spec: ColumnSpec,
    state: str,
    guard_raw: bool,
    text: str,
    region: str | None,
    email_domains: EmailDomains | None = None,
) -> str:
    """The scalar rule for one value of a column (the reference the fast paths must match); with
    `email_domains`, emails are decided through its per-domain verdicts (the same results)."""
    if state in ("sha256", "md5"):
        return check_prehashed(spec.kind, text, state)
    if not text.strip():
        raise InvalidIdentifier(spec.kind, Reason.EMPTY)
    if guard_raw:
        folded = text.strip().lower()
        if SHA256_HEX_RE.fullmatch(folded) or MD5_HEX_RE.fullmatch(folded):
            raise InvalidIdentifier(spec.kind, Reason.LOOKS_HASHED)
    if spec.kind == "email" and email_domains is not None:
        return email_domains.normalize(text)
    return normalize(spec.kind, text, region=region)


def prepare_value(
    spec: ColumnSpec, value: str, *, hash_state: str | None = None, region: str | None = None
) -> str:
    """The hash one value of `spec`'s column becomes (scalar path; raises InvalidIdentifier)."""
    state = hash_state or (spec.hash_state if spec.hash_state != "auto" else "raw")
    normalized = scalar_one(
        spec, state, spec.hash_state == "auto" and state == "raw", value, region or spec.region
    )
    if state in ("sha256", "md5"):
        return normalized
    if spec.kind == "phone" and spec.phone_format == "digits":
        normalized = normalized[1:]
    if spec.kind in MAID_KINDS and spec.maid_hash == "md5":
        return md5_hex(normalized)
    return sha256_hex(normalized)


def remap(part: Outcome, positions: pa.Array) -> Outcome:
    """Re-index an outcome computed on a subset back to the subset's positions."""
    out = Outcome()
    for i, v, prefix in part.ok_pieces():
        out.ok(pc.take(positions, i), v, prefix)
    for i, r in zip(part.bad_idx, part.bad_reason, strict=True):
        out.bad_each(pc.take(positions, i), r)
    for i in part.fallback:
        out.defer(pc.take(positions, i))
    return out


def identifier_texts(
    column: pa.Array | pa.ChunkedArray, name: str, delimiter: str | None = None
) -> tuple[pa.Array, pa.Array]:
    """(each identifier value as text, its row position) of an identifier column: list cells and delimited
    cells give several values; types follow `ttsync.identity.coltypes` (`ColumnTypeError` otherwise)."""
    return flatten(column, delimiter, name)


def is_list(t: pa.DataType) -> bool:
    """Whether a column of type `t` holds several values per cell (a list type)."""
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def flatten(
    column: pa.Array | pa.ChunkedArray, delimiter: str | None, name: str = "identifier"
) -> tuple[pa.Array, pa.Array]:
    """(values as strings, row position of each value): lists and delimited cells are split. Column types
    follow `ttsync.identity.coltypes` (a type that cannot hold identifiers raises `ColumnTypeError`)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if is_list(column.type):
        check_column_type(
            name, column.type, "identifier"
        )  # nested lists and lists of doubles, before casting
        rows = pc.list_parent_indices(column).cast(pa.int64())
        values = as_text(name, pc.list_flatten(column), "identifier")
    else:
        values = as_text(name, column, "identifier")
        rows = arange(len(values))
    if delimiter is not None:
        # A wholly blank cell stays one (empty) value; blank parts inside a cell are ignored.
        blank = fill_false(pc.equal(pc.utf8_trim_whitespace(values), ""))
        split = pc.split_pattern(pc.if_else(blank, pa.scalar(None, pa.string()), values), delimiter)
        parts = pc.list_flatten(split)
        part_rows = pc.take(rows, pc.list_parent_indices(split))
        nonblank = pc.not_equal(pc.utf8_trim_whitespace(parts), "")
        blank_idx = pc.filter(arange(len(values)), blank)
        values = pa.concat_arrays([pc.filter(parts, nonblank), pc.take(values, blank_idx)])
        rows = pa.concat_arrays([pc.filter(part_rows, nonblank), pc.take(rows, blank_idx)])
    return values, rows
