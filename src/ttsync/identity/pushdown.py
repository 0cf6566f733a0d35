"""Hash in the warehouse (SQL pushdown): the identity rules as SQL, so only digests leave the warehouse.

`pushdown_query(query, specs, ...)` wraps a source query in SQL (generated with sqlglot for DuckDB, PostgreSQL,
Snowflake, BigQuery, Spark SQL and Databricks) that returns the key column, each identifier column replaced by
its lowercase hex digest, and one reason-code column per identifier column. `PushdownPreparer` reads that
result like a pre-hashed input and adds the warehouse's rejections to the match report, so the run's files,
report and plan look exactly like the local path's.

The SQL implements docs/identity.md ("Hash in the warehouse"): emails by the strict ASCII rule the local fast
path accepts directly, mobile ids, pre-hashed columns, and phones only from columns declared E.164 (phone
parsing needs libphonenumber and stays in ttsync or Spark). A column the SQL cannot handle is refused with a
`PushdownRefused` that says how to fix the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from sqlglot import exp

from ttsync.identity.kinds import EMAIL_FAST_MAX_LENGTH, MAID_ALL_ZERO
from ttsync.identity.prepare import PreparedBatch, Preparer
from ttsync.identity.reasons import Reason
from ttsync.identity.report import MatchReport
from ttsync.identity.spec import MAID_KINDS, ColumnSpec

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "spark", "databricks")
# SQLAlchemy backend names -> sqlglot dialects.
SQLALCHEMY_DIALECTS = {
    "postgresql": "postgres",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "databricks": "databricks",
    "hive": "spark",
    "spark": "spark",
    "duckdb": "duckdb",
}
REASON_PREFIX = "__ttsync_reason__"
_QUERY_MARKER = "ttsync_source_query_marker"
# Whitespace trimmed around every value: Python's str.strip() also removes rarer Unicode spaces; a value padded
# with those is rejected in the warehouse (docs/identity.md).
TRIM_CHARS = " \t\n\r"

# Regular expressions without backslashes (string-literal escaping differs between dialects) and without
# non-capturing groups (Snowflake's POSIX flavour has none). Letters of both cases are accepted before
# lowercasing, so LOWER() only ever sees ASCII.
_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL_RE = f"^{_ATEXT}+([.]{_ATEXT}+)*@([A-Za-z0-9]+(-[A-Za-z0-9]+)*[.])+[A-Za-z]+$"
SPECIAL_USE_RE = "^.*[.](" + "|".join(sorted(d.replace(".", "[.]") for d in SPECIAL_USE_DOMAIN_NAMES)) + ")$"
# Any character outside printable ASCII: such values are refused (Java's `$` also matches before a final
# Unicode line terminator, and LOWER() of non-ASCII text differs between databases).
NOT_PRINTABLE_RE = "[^ -~]"
MAID_RE = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
SHA256_RE = "^[0-9A-Fa-f]{64}$"
MD5_RE = "^[0-9A-Fa-f]{32}$"
E164_RE = "^[+][1-9][0-9]{6,14}$"


class PushdownRefused(ValueError):
    """A column (or setting) the warehouse cannot hash by the documented rules; the message says the fix."""


@dataclass(frozen=True)
class PushdownQuery:
    """The rewritten query and what the preparer needs to read its result."""

    sql: str
    dialect: str
    specs: list[ColumnSpec]  # one per identifier column, as the result holds it (pre-hashed)
    reason_columns: dict[str, str]  # identifier column -> its reason-code column


def dialect_for_sqlalchemy(backend: str) -> str:
    """The sqlglot dialect of a SQLAlchemy backend name; `PushdownRefused` when there is none."""
    dialect = SQLALCHEMY_DIALECTS.get(backend)
    if dialect is None:
        raise PushdownRefused(
            f"hash_in_warehouse is not available for {backend} sources (supported: PostgreSQL, Snowflake, "
            "BigQuery, Databricks, Spark SQL and DuckDB); remove `hash_in_warehouse` from the source"
        )
    return dialect


def pushdown_query(
    query: str,
    specs: Sequence[ColumnSpec],
    *,
    key_column: str,
    dialect: str,
    e164_columns: Sequence[str] = (),
) -> PushdownQuery:
    """Wrap `query` so the warehouse normalizes, checks and hashes every identifier column of `specs`.

    The result has `key_column`, each identifier column (its hex digest, or NULL) and a reason-code column per
    identifier column (`__ttsync_reason__<column>`, NULL unless the value was rejected). `e164_columns`: phone
    columns the warehouse holds in E.164 (`+` and 7-15 digits); other phone columns are refused."""
    if dialect not in DIALECTS:
        raise PushdownRefused(f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    for spec in specs:
        _check_spec(spec, key_column, e164_columns)
    inner = exp.select(exp.column(key_column, quoted=True))
    for i, spec in enumerate(specs):
        text = exp.Trim(
            this=exp.cast(exp.column(spec.column, quoted=True), exp.DataType.build("text")),
            expression=exp.Literal.string(TRIM_CHARS),
        )
        inner = inner.select(exp.alias_(text, f"t{i}", quoted=True))
    inner = inner.from_(exp.alias_(exp.to_table(_QUERY_MARKER), "ttsync_q"))
    outer = exp.select(exp.column(key_column, quoted=True))
    reason_columns: dict[str, str] = {}
    out_specs: list[ColumnSpec] = []
    for i, spec in enumerate(specs):
        t = exp.column(f"t{i}", quoted=True)
        digest, reasons, state = _rules(spec, t, dialect)
        if reasons:  # every rule but external ids' checks the text: refuse non-ASCII first
            first: exp.Expr = exp.or_(_not_printable(t, dialect), reasons[0][0])
            reasons[0] = (first, reasons[0][1])
        reason_name = f"{REASON_PREFIX}{spec.column}"
        reason_columns[spec.column] = reason_name
        whens = [
            (t.is_(exp.null()), exp.null()),
            (exp.EQ(this=t, expression=exp.Literal.string("")), _lit(Reason.EMPTY)),
        ]
        case = exp.Case()
        for condition, value in whens + [(c, _lit(r)) for c, r in reasons]:
            case = case.when(condition, value)
        outer = outer.select(exp.alias_(case, reason_name, quoted=True))
        ok = exp.and_(
            exp.not_(t.is_(exp.null())),
            exp.NEQ(this=t, expression=exp.Literal.string("")),
            *[exp.not_(exp.paren(c)) for c, _ in reasons],
        )
        outer = outer.select(exp.alias_(exp.Case().when(ok, digest), spec.column, quoted=True))
        out_specs.append(ColumnSpec(column=spec.column, kind=spec.kind, hash_state=state))  # type: ignore[arg-type]
    outer = outer.from_(exp.alias_(exp.Subquery(this=inner), "ttsync_t"))
    sql = outer.sql(dialect=dialect, pretty=True)
    body = query.strip().rstrip(";").rstrip()
    # The user's query is embedded as written (never re-rendered by sqlglot); a newline ends a trailing comment.
    sql = sql.replace(_QUERY_MARKER, f"(\n{body}\n)", 1)
    return PushdownQuery(sql=sql, dialect=dialect, specs=out_specs, reason_columns=reason_columns)


def _check_spec(spec: ColumnSpec, key_column: str, e164_columns: Sequence[str]) -> None:
    if spec.column == key_column:
        raise PushdownRefused(
            f"column {spec.column!r} is both the key column and an identifier: with hash_in_warehouse the key "
            "leaves the warehouse as it is; use a customer id as `key_column`"
        )
    if spec.hash_state == "auto":
        raise PushdownRefused(
            f"column {spec.column!r} has hash state `auto`, which ttsync decides from a sample of values; with "
            f"hash_in_warehouse declare it in the data template's attribute_mapping, e.g. "
            f"`{spec.column}: {spec.kind.upper()}:raw` or `:sha256`"
        )
    if spec.delimiter is not None:
        raise PushdownRefused(f"column {spec.column!r}: multi-value cells cannot be hashed in the warehouse")
    if spec.kind == "phone" and spec.hash_state == "raw" and spec.column not in e164_columns:
        raise PushdownRefused(
            f"phone column {spec.column!r} cannot be hashed in the warehouse: parsing phone numbers needs "
            "libphonenumber. If the warehouse stores it in E.164 (+ and digits, e.g. +14155550100), list it in "
            f"the source's `e164_columns`; otherwise remove `hash_in_warehouse` from the source (or use a Spark "
            "source) so ttsync parses the numbers"
        )


def _rules(
    spec: ColumnSpec, t: exp.Expr, dialect: str
) -> tuple[exp.Expr, list[tuple[exp.Expr, Reason]], str]:
    """(digest expression of an accepted value, [(rejection condition, reason)] in order, output hash state)."""
    if spec.hash_state in ("sha256", "md5"):
        pattern, reason = (
            (SHA256_RE, Reason.NOT_SHA256_HEX)
            if spec.hash_state == "sha256"
            else (MD5_RE, Reason.NOT_MD5_HEX)
        )
        return exp.Lower(this=t), [(exp.not_(_matches(t, pattern)), reason)], spec.hash_state
    algorithm = spec.maid_hash if spec.kind in MAID_KINDS else "sha256"
    if spec.kind == "email":
        bad = exp.or_(
            exp.not_(_matches(t, EMAIL_RE)),
            exp.GT(this=exp.Length(this=t), expression=exp.Literal.number(EMAIL_FAST_MAX_LENGTH)),
            _matches(exp.Lower(this=t), SPECIAL_USE_RE),
        )
        return _digest(exp.Lower(this=t), algorithm, dialect), [(bad, Reason.INVALID_EMAIL)], algorithm
    if spec.kind in MAID_KINDS:
        zero = exp.EQ(this=exp.Lower(this=t), expression=exp.Literal.string(MAID_ALL_ZERO))
        reasons: list[tuple[exp.Expr, Reason]] = [
            (exp.not_(_matches(t, MAID_RE)), Reason.INVALID_MAID),
            (zero, Reason.MAID_ALL_ZERO),
        ]
        return _digest(exp.Lower(this=t), algorithm, dialect), reasons, algorithm
    if spec.kind == "phone":
        value: exp.Expr = t
        if spec.phone_format == "digits":
            value = exp.Substring(this=t, start=exp.Literal.number(2))
        return (
            _digest(value, "sha256", dialect),
            [(exp.not_(_matches(t, E164_RE)), Reason.INVALID_PHONE)],
            "sha256",
        )
    return _digest(t, "sha256", dialect), [], "sha256"  # external_id: trimmed, case kept


def _matches(value: exp.Expr, pattern: str) -> exp.Expr:
    return exp.RegexpLike(this=value, expression=exp.Literal.string(pattern))


def _not_printable(value: exp.Expr, dialect: str) -> exp.Expr:
    """Whether `value` holds a character outside printable ASCII (a search, not a full match)."""
    if dialect == "snowflake":  # REGEXP_LIKE matches the whole string there: search with REGEXP_INSTR
        found = _fn("REGEXP_INSTR", value, exp.Literal.string(NOT_PRINTABLE_RE))
        return exp.GT(this=found, expression=exp.Literal.number(0))
    return _matches(value, NOT_PRINTABLE_RE)


def _lit(reason: Reason) -> exp.Expr:
    return exp.Literal.string(reason.value)


def _fn(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _digest(value: exp.Expr, algorithm: str, dialect: str) -> exp.Expr:
    """Lowercase hex SHA-256 / MD5 of a text value's UTF-8 bytes, in `dialect`."""
    if algorithm == "md5":
        return exp.MD5(this=value)  # sqlglot renders hex for each dialect (TO_HEX(MD5()) on BigQuery)
    if dialect == "duckdb":
        return _fn("SHA256", value)
    if dialect == "postgres":
        return _fn(
            "ENCODE",
            _fn("SHA256", _fn("CONVERT_TO", value, exp.Literal.string("UTF8"))),
            exp.Literal.string("hex"),
        )
    if dialect == "bigquery":
        return _fn("TO_HEX", _fn("SHA256", value))
    return _fn("SHA2", value, exp.Literal.number(256))  # Snowflake, Spark SQL, Databricks: lowercase hex


def check_parses(sql: str, dialect: str) -> None:
    """Raise `sqlglot.errors.ParseError` unless `sql` parses as one statement of `dialect`."""
    statements = sqlglot.parse(sql, read=dialect)
    if len(statements) != 1 or statements[0] is None:
        raise sqlglot.errors.ParseError(f"expected one statement, got {len(statements)}")


class PushdownPreparer(Preparer):
    """A `Preparer` for a pushdown result: digests arrive pre-hashed, rejections as reason codes.

    Each batch's reason columns become rejections (row key, column, reason) and report counts; the digests go
    through the usual pre-hashed path, so duplicates, matchable people and the files are the local path's."""

    def __init__(self, pushdown: PushdownQuery, key_column: str) -> None:
        super().__init__(pushdown.specs, key_column=key_column)
        self._reason_columns = pushdown.reason_columns
        self._warehouse_rejected: dict[str, dict[str, int]] = {}  # id_schema -> reason -> count

    def _finished(self, batch: pa.RecordBatch, prepared: PreparedBatch) -> PreparedBatch:
        """Add a prepared batch's rejections by the warehouse (`Preparer.process` and `process_stream` call it)."""
        keys = pc.cast(batch.column(self.key_column), pa.string())
        parts = [prepared.rejects]
        for spec in self.specs:
            reasons = batch.column(self._reason_columns[spec.column])
            if reasons.null_count == len(reasons):
                continue
            rejected = pc.is_valid(reasons)
            bad_reasons = pc.cast(pc.filter(reasons, rejected), pa.string())
            schema = spec.schema_for(spec.hash_state)
            counts = self._warehouse_rejected.setdefault(schema, {})
            for item in pc.value_counts(bad_reasons).to_pylist():
                counts[str(item["values"])] = counts.get(str(item["values"]), 0) + int(item["counts"])
            parts.append(
                pa.record_batch(
                    [
                        pc.filter(keys, rejected),
                        pa.repeat(pa.scalar(spec.column), len(bad_reasons)),
                        bad_reasons,
                    ],
                    schema=prepared.rejects.schema,
                )
            )
        if len(parts) > 1:
            table = pa.Table.from_batches(parts).combine_chunks()
            prepared.rejects = table.to_batches()[0] if table.num_rows else prepared.rejects
        return prepared

    def report(self) -> MatchReport:
        """The match report, the warehouse's rejections included (present = valid + rejected)."""
        report = super().report()
        types = []
        for stats in report.types:
            extra = self._warehouse_rejected.get(stats.id_schema, {})
            rejected = dict(stats.rejected)
            for reason, count in extra.items():
                rejected[reason] = rejected.get(reason, 0) + count
            types.append(
                stats.model_copy(
                    update={"rejected": rejected, "present": stats.present + sum(extra.values())}
                )
            )
        return report.model_copy(update={"types": types})
