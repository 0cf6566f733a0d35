"""Sources over real DuckDB, CSV, Parquet, SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pg import missing_reason, postgres_server
from ttsync.config.models import Source
from ttsync.sources import SourceError, open_source


@pytest.fixture
def duck(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE people AS SELECT range AS id, 'secret' || range || '@x.com' AS email FROM range(2500)"
    )
    con.close()
    return path


def test_duckdb_streams_batches_and_refuses_writes(duck: Path) -> None:
    with open_source(Source(name="wh", path=duck.name), root=duck.parent) as src:
        batches = list(src.stream("SELECT * FROM people ORDER BY id", batch_rows=1000))
        assert [b.num_rows for b in batches] == [1000, 1000, 500]
        assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(2500))
        assert src.columns("SELECT id, email FROM people") == ["id", "email"]
        with pytest.raises(SourceError, match="read-only"):
            list(src.stream("CREATE TABLE evil AS SELECT 1 AS x"))


def test_errors_are_clear_and_hold_no_row_values(duck: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(Source(name="wh", path="missing.duckdb"), root=tmp_path)
    with open_source(Source(name="wh", path=str(duck)), root=duck.parent) as src:
        with pytest.raises(SourceError, match="Parser Error") as parse:
            list(src.stream("SELEC 1"))
        assert "SELEC" in str(parse.value)
        with pytest.raises(SourceError, match="Conversion Error") as conversion:
            list(src.stream("SELECT CAST(email AS INTEGER) FROM people"))
        assert "@x.com" not in str(conversion.value)
    with pytest.raises(SourceError, match="not a SQLAlchemy URL"):
        open_source(Source.model_construct(name="bad", kind="sqlalchemy", url="::nope::"))


def test_csv_and_parquet_are_tables_named_by_the_source(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id,email\n1,a@x.com\n2,b@x.com\n")
    pq.write_table(pa.table({"id": [1, 2, 3]}), tmp_path / "ids.parquet")
    with open_source(Source(name="people", kind="csv", path="people.csv"), root=tmp_path) as src:
        assert src.read_all("SELECT count(*) AS n FROM people").column("n").to_pylist() == [2]
    with open_source(Source(name="p", kind="parquet", path="ids.parquet", table="ids"), root=tmp_path) as src:
        assert src.read_all("SELECT sum(id) AS s FROM ids").column("s").to_pylist() == [6]


def test_sqlalchemy_sqlite_streams_in_chunks_with_stable_types(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER, email TEXT)")
    # The first chunk has only NULL emails: later chunks must still be typed as strings.
    con.executemany(
        "INSERT INTO t VALUES (?, ?)", [(i, None if i < 100 else f"u{i}@x.com") for i in range(250)]
    )
    con.commit()
    con.close()
    with open_source(Source(name="lite", kind="sqlalchemy", url=f"sqlite:///{db}")) as src:
        batches = list(src.stream("SELECT id, email FROM t ORDER BY id", batch_rows=100))
        assert [b.num_rows for b in batches] == [100, 100, 50]
        assert pa.types.is_string(batches[1].schema.field("email").type)
        assert src.columns("SELECT id, email FROM t") == ["id", "email"]
        with pytest.raises(SourceError, match="no such table"):
            list(src.stream("SELECT * FROM nope"))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.mark.postgres
def test_sqlalchemy_postgres_server_side_cursor(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE people AS SELECT g AS id, 'p' || g AS name FROM generate_series(1, 5000) g")
        )
    engine.dispose()
    monkeypatch.setenv("WAREHOUSE_URL", pg_url)
    with open_source(Source(name="pg", kind="sqlalchemy", url_env="WAREHOUSE_URL")) as src:
        sizes = [b.num_rows for b in src.stream("SELECT id, name FROM people ORDER BY id", batch_rows=2000)]
        assert sizes == [2000, 2000, 1000]
        with pytest.raises(SourceError, match="does not exist"):
            list(src.stream("SELECT * FROM missing_table"))
