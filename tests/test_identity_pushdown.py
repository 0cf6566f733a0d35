"""Hash in the warehouse: docs/identity.md's test vectors through real DuckDB and PostgreSQL, and the SQL of the
other dialects checked with sqlglot's parser for that dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
import sqlglot

from pg import missing_reason, postgres_server
from test_identity_docs import VECTORS
from ttsync.config.models import Source
from ttsync.identity import ColumnSpec, prepare_value
from ttsync.identity.pushdown import (
    DIALECTS,
    REASON_PREFIX,
    PushdownRefused,
    check_parses,
    pushdown_query,
)
from ttsync.sources import open_source

# The warehouse parses no phone numbers: a phone column must hold E.164, so phone vectors go in as their
# normalized E.164 text (the digest must still be the documented one). A national number without a region
# is simply not E.164 there: `invalid_phone` instead of the local `phone_region_unknown` (docs/identity.md).
WAREHOUSE_REASON = {"phone_region_unknown": "invalid_phone"}


def _case(vector: dict[str, Any]) -> tuple[ColumnSpec, str, str]:
    """(column spec, value stored in the warehouse, expected digest or reject:<reason>)."""
    options = {k: v for k, v in vector["options"].items() if k != "region"}
    spec = ColumnSpec(column="v", kind=vector["kind"], **options)
    value, expected = vector["input"], vector["digest"]
    if vector["kind"] == "phone" and vector["normalized"]:
        value = vector["normalized"]
    if expected.startswith("reject:"):
        reason = expected.split(":", 1)[1]
        expected = f"reject:{WAREHOUSE_REASON.get(reason, reason)}"
    return spec, value, expected


CASES = [_case(v) for v in VECTORS]
EXTRA = [
    # Unicode whitespace and line separators: refused in the warehouse, never hashed with the odd character.
    (ColumnSpec(column="v", kind="email"), "ann@example.com\u2028", "reject:invalid_email"),
    (ColumnSpec(column="v", kind="email"), "ANN@EXAMPLE.COM\t", prepare_value(ColumnSpec("v", "email"), "ann@example.com")),
    (ColumnSpec(column="v", kind="email"), "ann@ex\u00e4mple.com", "reject:invalid_email"),
    (ColumnSpec(column="v", kind="idfa"), "6D92078A-8246-4BA4-AE5B-76104861E7DC\u0085", "reject:invalid_maid"),
    (ColumnSpec(column="v", kind="phone"), "+1 213 373 4253", "reject:invalid_phone"),
    (ColumnSpec(column="v", kind="email"), "o'hara@example.com", prepare_value(ColumnSpec("v", "email"), "o'hara@example.com")),
]  # fmt: skip


def _run(
    source: Source, root: Path | None, dialect: str, cases: list[tuple[ColumnSpec, str, str]]
) -> list[str]:
    """Each case's digest or reject:<reason>, as the warehouse computes them."""
    got = []
    with open_source(source, root) as src:
        for i, (spec, _value, _expected) in enumerate(cases):
            q = pushdown_query(f"SELECT id, v FROM vectors WHERE id = {i}", [spec], key_column="id",
                               dialect=dialect, e164_columns=["v"])  # fmt: skip
            table = src.read_all(q.sql)
            assert table.column_names == ["id", f"{REASON_PREFIX}v", "v"]
            row = table.to_pylist()[0]
            got.append(row["v"] if row["v"] is not None else f"reject:{row[REASON_PREFIX + 'v']}")
    return got


def test_vectors_through_duckdb(tmp_path: Path) -> None:
    cases = CASES + EXTRA
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("CREATE TABLE vectors (id INTEGER, v VARCHAR)")
        con.executemany("INSERT INTO vectors VALUES (?, ?)", [(i, c[1]) for i, c in enumerate(cases)])
    got = _run(Source(name="wh", kind="duckdb", path="wh.duckdb"), tmp_path, "duckdb", cases)
    assert got == [c[2] for c in cases]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.mark.postgres
def test_vectors_through_postgresql(pg_url: str) -> None:
    cases = CASES + EXTRA
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE vectors (id INTEGER, v TEXT)"))
        conn.execute(
            sa.text("INSERT INTO vectors VALUES (:i, :v)"), [{"i": i, "v": c[1]} for i, c in enumerate(cases)]
        )
    engine.dispose()
    got = _run(Source(name="pg", kind="sqlalchemy", url=pg_url), None, "postgres", cases)
    assert got == [c[2] for c in cases]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_parses_and_hashes_with_its_own_functions(dialect: str) -> None:
    specs = [
        ColumnSpec("email", "email"),
        ColumnSpec("phone", "phone", phone_format="digits"),
        ColumnSpec("idfa", "idfa", maid_hash="md5"),
        ColumnSpec("aaid", "aaid", hash_state="sha256"),
    ]
    sql = pushdown_query("SELECT * FROM customers -- trailing comment;", specs, key_column="customer_id",
                         dialect=dialect, e164_columns=["phone"]).sql  # fmt: skip
    check_parses(sql, dialect)
    tree = sqlglot.parse_one(sql, read=dialect)
    assert isinstance(tree, sqlglot.exp.Query)
    names = [c.alias_or_name for c in tree.selects]
    assert names == ["customer_id", *(n for s in specs for n in (REASON_PREFIX + s.column, s.column))]
    expected = {
        "duckdb": "SHA256(LOWER(",
        "postgres": "ENCODE(SHA256(CONVERT_TO(",
        "snowflake": "SHA2(LOWER(",
        "bigquery": "TO_HEX(SHA256(LOWER(",
        "spark": "SHA2(LOWER(",
        "databricks": "SHA2(LOWER(",
    }[dialect]
    assert expected in sql
    assert "-- trailing comment\n)" in sql  # a newline ends the comment: it cannot eat the closing `)`


def test_refusals_say_how_to_fix() -> None:
    with pytest.raises(PushdownRefused, match="e164_columns"):
        pushdown_query("SELECT 1", [ColumnSpec("phone", "phone")], key_column="id", dialect="duckdb")
    with pytest.raises(PushdownRefused, match=r"IDFA:raw"):
        pushdown_query(
            "SELECT 1", [ColumnSpec("idfa", "idfa", hash_state="auto")], key_column="id", dialect="duckdb"
        )
    with pytest.raises(PushdownRefused, match="customer id"):
        pushdown_query("SELECT 1", [ColumnSpec("email", "email")], key_column="email", dialect="duckdb")
    with pytest.raises(PushdownRefused, match="unknown SQL dialect"):
        pushdown_query("SELECT 1", [ColumnSpec("email", "email")], key_column="id", dialect="oracle")
    # A pre-hashed phone column needs no parsing: allowed without e164_columns.
    pushdown_query(
        "SELECT 1", [ColumnSpec("p", "phone", hash_state="sha256")], key_column="id", dialect="duckdb"
    )


def test_vectors_are_the_documented_ones() -> None:
    # Guard against the table being emptied: every documented digest appears among the expected results.
    documented = {v["digest"] for v in VECTORS if not v["digest"].startswith("reject:")}
    assert documented <= {c[2] for c in CASES}
    assert len(documented) >= 12


def test_a_source_without_sha256_in_sql_is_refused_with_the_fix(tmp_path: Path) -> None:
    from ttsync.errors import ConfigError
    from ttsync.sources.pushdown import warehouse_query

    lite = Source(
        name="lite", kind="sqlalchemy", url=f"sqlite:///{tmp_path / 'x.db'}", hash_in_warehouse=True
    )
    with pytest.raises(ConfigError, match=r"not available for sqlite sources.*remove `hash_in_warehouse`"):
        warehouse_query(lite, "SELECT 1", [ColumnSpec("email", "email")], "id")
    plain = Source(name="lite", kind="sqlalchemy", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert warehouse_query(plain, "SELECT 1", [ColumnSpec("email", "email")], "id") is None
    snow = Source(name="snow", kind="sqlalchemy", url="snowflake://analyst@acct/db", hash_in_warehouse=True)
    query = warehouse_query(snow, "SELECT * FROM customers", [ColumnSpec("EMAIL", "email")], "CUSTOMER_ID")
    assert query is not None
    assert query.dialect == "snowflake"
    assert 'SHA2(LOWER("t0"), 256)' in query.sql  # no driver needed: the dialect comes from the URL


def test_a_list_column_is_refused_in_the_warehouse(tmp_path: Path) -> None:
    from ttsync.errors import ConfigError
    from ttsync.sources.pushdown import warehouse_query

    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS id, ['a@example.com', 'b@example.com'] AS email")
    source = Source(name="wh", kind="duckdb", path="wh.duckdb", hash_in_warehouse=True)
    with open_source(source, tmp_path) as src:
        schema = src.schema("SELECT id, email FROM t")
    with pytest.raises(
        ConfigError, match="'email' is a list; multi-value cells cannot be hashed in the warehouse"
    ):
        warehouse_query(source, "SELECT id, email FROM t", [ColumnSpec("email", "email")], "id", schema)
