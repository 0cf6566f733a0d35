"""Source queries are one read-only SELECT, and sources read only their own files (real DuckDB, CSV, SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from pg import missing_reason, postgres_server
from ttsync.config.models import Source
from ttsync.sources import SOURCE_DIRS_ENV, SourceError, open_source


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute("CREATE TABLE people AS SELECT range AS id, 'p' || range || '@x.com' AS email FROM range(10)")
    con.close()
    (root / "people.csv").write_text("id,email\n1,ann@example.com\n2,bob@example.com\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text("a\n1\n")
    return root


REFUSED = [
    "COPY people TO '{out}/dump.csv'",
    "COPY (SELECT * FROM people) TO '{out}/dump.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '{out}/db'",
    "ATTACH '{out}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "CREATE TABLE t AS SELECT 1",
    "INSERT INTO people VALUES (1, 'x')",
    "SELECT 1; COPY people TO '{out}/dump.csv'",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("query", REFUSED)
def test_duckdb_refuses_everything_but_one_select(ws: Path, query: str) -> None:
    out = ws.parent / "outside"
    with open_source(Source(name="wh", path="wh.duckdb"), root=ws) as src:
        for call in (src.columns, src.read_all):
            with pytest.raises(SourceError, match="read-only SELECT") as refused:
                call(query.format(out=out))
            assert "orchestration's `query`" in str(refused.value)
    assert sorted(p.name for p in out.iterdir()) == ["secret.csv"]  # nothing was written


@pytest.mark.parametrize("kind", ["duckdb", "csv"])
def test_select_cannot_read_or_write_other_files(ws: Path, kind: str) -> None:
    outside = ws.parent / "outside" / "secret.csv"
    source = (
        Source(name="people", kind="csv", path="people.csv")
        if kind == "csv"
        else Source(name="wh", path="wh.duckdb")
    )
    with open_source(source, root=ws) as src:
        for query in (
            f"SELECT * FROM read_csv('{outside}')",
            f"SELECT * FROM read_csv('{ws}/../outside/secret.csv')",
            "SELECT * FROM read_text('/etc/hostname')",
            "SELECT * FROM glob('/etc/*')",
        ):
            with pytest.raises(SourceError, match="disabled by configuration"):
                src.read_all(query)
        # The sandbox cannot be lifted from inside a query.
        with pytest.raises(SourceError):
            src.read_all("SELECT * FROM query('SET enable_external_access = true')")


def test_file_paths_must_stay_in_the_workspace(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_DIRS_ENV, raising=False)
    for path in (
        "../outside/secret.csv",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        str(ws.parent / "outside/*.csv"),
    ):
        with pytest.raises(SourceError, match=f"outside the workspace folder.*{SOURCE_DIRS_ENV}"):
            open_source(Source(name="c", kind="csv", path=path), root=ws)
    (ws / "link.csv").symlink_to(ws.parent / "outside" / "secret.csv")
    with pytest.raises(SourceError, match="outside the workspace folder"):
        open_source(Source(name="c", kind="csv", path="link.csv"), root=ws)
    # A folder the user allows explicitly is fine (absolute path or glob).
    monkeypatch.setenv(SOURCE_DIRS_ENV, str(ws.parent / "outside"))
    with open_source(
        Source(name="c", kind="csv", path=str(ws.parent / "outside" / "secret.csv")), root=ws
    ) as src:
        assert src.read_all("SELECT count(*) AS n FROM c").column("n").to_pylist() == [1]
    with open_source(Source(name="c", kind="csv", path="../outside/*.csv"), root=ws) as src:
        assert src.read_all("SELECT count(*) AS n FROM c").column("n").to_pylist() == [1]


def test_usual_queries_still_run(ws: Path) -> None:
    with open_source(Source(name="wh", path="wh.duckdb"), root=ws) as src:
        for query in (
            "SELECT id FROM people WHERE id < 3",
            "WITH p AS (SELECT * FROM people) SELECT id FROM p WHERE id < 3",
            "FROM people SELECT id WHERE id < 3",
            "  SELECT id FROM people WHERE id < 3;  ",
            "(SELECT id FROM people WHERE id < 2) UNION ALL (SELECT 2)",
        ):
            assert sorted(src.read_all(query).column("id").to_pylist()) == [0, 1, 2]
    with open_source(Source(name="people", kind="csv", path="people.csv"), root=ws) as src:
        assert src.read_all("SELECT count(*) AS n FROM people").column("n").to_pylist() == [2]


def test_sqlalchemy_sqlite_is_read_only(tmp_path: Path) -> None:
    db = tmp_path / "lite.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE people (id INTEGER, email TEXT)")
        con.execute("INSERT INTO people VALUES (1, 'ann@example.com')")
    with open_source(Source(name="lite", kind="sqlalchemy", url=f"sqlite:///{db}")) as src:
        assert src.read_all("SELECT id FROM people").column("id").to_pylist() == [1]
        for query in ("DELETE FROM people", "SELECT 1; DELETE FROM people", "ATTACH 'x.db' AS x"):
            with pytest.raises(SourceError, match="read-only SELECT"):
                src.read_all(query)
        # A statement DuckDB's parser cannot read still meets SQLite's own read-only mode.
        with pytest.raises(SourceError, match=r"attempt to write a readonly database"):
            src.read_all("REPLACE INTO people VALUES (2, 'b')")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM people").fetchone() == (1,)


def test_database_errors_are_redacted(ws: Path) -> None:
    with open_source(Source(name="people", kind="csv", path="people.csv"), root=ws) as src:
        for query in (
            "SELECT email::JSON FROM people",
            "SELECT strptime(email, '%Y-%m-%d') FROM people",
            "SELECT CAST(email AS INTEGER) FROM people",
            "SELECT json_extract(email, '$.a') FROM people",
        ):
            with pytest.raises(SourceError, match="the query failed") as failed:
                src.read_all(query)
            assert "@example.com" not in str(failed.value)
            assert "ann" not in str(failed.value)
        with pytest.raises(SourceError, match="Parser Error") as parse:
            src.read_all("SELEC 1")
        assert "SELEC" in str(parse.value)  # SQL errors keep the SQL text that helps fix them


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.mark.postgres
def test_sqlalchemy_postgres_runs_read_only_transactions(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id int, email text)"))
        conn.execute(sa.text("CREATE SEQUENCE people_seq"))
        conn.execute(sa.text("INSERT INTO people VALUES (1, 'ann@example.com')"))
    with open_source(Source(name="pg", kind="sqlalchemy", url=pg_url)) as src:
        assert src.read_all("SELECT id FROM people").column("id").to_pylist() == [1]
        for query in ("DELETE FROM people", "SELECT 1; DELETE FROM people", "COPY people TO '/tmp/x.csv'"):
            with pytest.raises(SourceError, match="read-only SELECT"):
                src.read_all(query)
        # A writing function inside a SELECT passes the statement check; the read-only transaction stops it.
        with pytest.raises(SourceError, match="read-only transaction"):
            src.read_all("SELECT id FROM people, LATERAL (SELECT setval('people_seq', 1)) s")
        with pytest.raises(SourceError, match="query failed") as failed:
            src.read_all("SELECT CAST(email AS int) FROM people")
        assert "ann@example.com" not in str(failed.value)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM people")).scalar() == 1
    engine.dispose()


def test_large_queries_spill_into_a_private_folder_removed_on_close(ws: Path) -> None:
    with open_source(Source(name="wh", path="wh.duckdb"), root=ws) as src:
        spill = Path(src.read_all("SELECT current_setting('temp_directory') AS d").column("d")[0].as_py())
        assert spill.is_dir()
        assert spill.stat().st_mode & 0o077 == 0  # not next to the warehouse nor in the current folder
        assert not spill.is_relative_to(ws)
    assert not spill.exists()
