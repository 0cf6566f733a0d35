"""What a source may do: run one read-only SELECT, and read only its own files.

A source query comes from a config file (possibly someone else's pull request). It must not write personal
data anywhere (`COPY ... TO`), reach other databases or files (`ATTACH`, `read_csv('/etc/passwd')`), change
settings (`SET`, `PRAGMA`) or load code (`INSTALL`, `LOAD`). Two layers, each enough on its own for DuckDB:

- the query is parsed with DuckDB's own parser (`duckdb.extract_statements`, no regex) and must be exactly one
  SELECT statement (WITH, VALUES, FROM-first, DESCRIBE and SHOW parse as SELECT);
- DuckDB connections run with `enable_external_access = false` and `lock_configuration = true`, the source's
  own file(s) being the only allowed paths (`lock_down`).

File paths (DuckDB, CSV and Parquet sources) must resolve, symlinks followed, inside the workspace folder or a
directory listed in `$TTSYNC_SOURCE_DIRS` (`check_source_path`): `../../etc/passwd` is refused.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import duckdb

from ttsync.redact import redact_error
from ttsync.sources.base import SourceError
from ttsync.sqltext import sql_literal

SOURCE_DIRS_ENV: Final = "TTSYNC_SOURCE_DIRS"
_GLOB_CHARS: Final = "*?["
_REFUSED_HINT: Final = (
    "ttsync runs one read-only SELECT per source query (no COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, "
    "CREATE, INSERT, UPDATE, DELETE or other statements)"
)


def statement_types(sql: str) -> list[str]:
    """The statement types DuckDB's parser sees in `sql` (e.g. ["SELECT"]); raises `duckdb.Error` when it
    cannot parse it."""
    return [statement.type.name for statement in duckdb.extract_statements(sql)]


def check_read_only_query(name: str, sql: str, *, unparsable_ok: bool = False) -> None:
    """Raise `SourceError` unless `sql` is exactly one SELECT statement.

    `unparsable_ok`: a query DuckDB's parser cannot read (another SQL dialect) passes, for sources whose
    database itself enforces read-only transactions; otherwise the parser's error is reported.
    """
    try:
        types = statement_types(sql)
    except duckdb.Error as exc:
        if unparsable_ok:
            return
        message = redact_error(exc).strip()
        raise SourceError(f"source {name!r}: the query failed: {message}", database_message=message) from None
    if not types:
        raise SourceError(
            f"source {name!r}: the query is empty; write one SELECT in the orchestration's `query`"
        )
    if len(types) > 1:
        raise SourceError(
            f"source {name!r}: the query holds {len(types)} statements ({', '.join(types)}); {_REFUSED_HINT}: "
            "keep one SELECT in the orchestration's `query`"
        )
    if types[0] != "SELECT":
        raise SourceError(
            f"source {name!r}: the query is refused, it is not a SELECT but a {types[0]} statement; {_REFUSED_HINT}: "
            "keep only the SELECT in the orchestration's `query`"
        )


def allowed_roots(root: Path, extra: Sequence[Path] | None = None) -> list[Path]:
    """Directories source files may live in: the workspace folder, `$TTSYNC_SOURCE_DIRS`, and `extra`."""
    dirs = [root, *(extra or [])]
    dirs += [Path(p) for p in os.environ.get(SOURCE_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [d.expanduser().resolve() for d in dirs]


def check_source_path(name: str, path: Path, roots: Sequence[Path]) -> Path:
    """The resolved `path` (symlinks followed) if it lies inside one of `roots`; else `SourceError`.

    A glob (`data/*.parquet`) is checked by its folder part and then by every file it matches.
    """
    pattern = str(path)
    is_glob = any(ch in pattern for ch in _GLOB_CHARS)
    base = _glob_base(pattern) if is_glob else path
    candidates = [base, *(Path(p) for p in glob.glob(pattern))] if is_glob else [path]
    for candidate in candidates:
        resolved = candidate.resolve()
        if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
            raise SourceError(
                f"source {name!r}: {path} is outside the workspace folder, refused (source files must be "
                f"inside {roots[0]}); move or link the data there, or allow its folder with "
                f"{SOURCE_DIRS_ENV}=/path/to/folder (several separated by {os.pathsep!r})"
            )
    return path.resolve() if not is_glob else path


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern (everything before its first wildcard)."""
    return Path(pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0])


def lock_down(
    connection: duckdb.DuckDBPyConnection, allowed: Sequence[Path] = (), *, spill_dir: Path | None = None
) -> None:
    """Confine an open DuckDB connection to its own files and lock its settings.

    `allowed`: the files the connection may read (a glob allows its folder). Then every other file system
    operation is disabled (`enable_external_access = false`: no COPY TO, ATTACH, read_csv of other files, no
    extension loading) and the configuration locked, so that no query can turn it back on. A DuckDB database
    file opened before this call stays readable. `spill_dir`: where DuckDB may spill a large query (its
    own temporary files are not external access)."""
    files = [str(p) for p in allowed if not any(ch in str(p) for ch in _GLOB_CHARS)]
    folders = [
        str(_glob_base(str(p)).resolve()) + os.sep for p in allowed if any(ch in str(p) for ch in _GLOB_CHARS)
    ]
    if spill_dir is not None:
        connection.execute(f"SET temp_directory = {sql_literal(spill_dir)}")
    for key, values in (("allowed_paths", files), ("allowed_directories", folders)):
        if values:
            connection.execute(f"SET {key} = [{', '.join(sql_literal(v) for v in values)}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
