"""Write hashed customer files: `.csv` parts of one identifier per line, written by DuckDB `COPY ... TO`.

A part is what one `dmp/custom_audience/file/upload/` call sends (ref §2.4 step 1). Parts are cut from a
sorted set of hashes, so the same plan always gives byte-identical parts: a resumed delivery can check with
the MD5 that a part it rewrites is the part TikTok already has.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ttsync.sqltext import sql_identifier, sql_literal

# 64 hex characters and a newline per SHA-256 line (33 bytes per MD5 line): 500,000 lines make a file of
# about 32.5 MB, well under TikTok's 50 MB per file (ref §2.5), and 500 such files (the most one audience
# takes) hold 250M identifiers.
DEFAULT_PART_ROWS = 500_000


@dataclass(frozen=True)
class PartFile:
    """One written part: file name (inside the work folder), rows and the MD5 hex of its bytes."""

    name: str
    rows: int
    md5: str

    def to_json(self) -> dict[str, Any]:
        """JSON form for checkpoints."""
        return {"name": self.name, "rows": self.rows, "md5": self.md5}


def write_parts(
    con: duckdb.DuckDBPyConnection,
    *,
    source_sql: str,
    header: str,
    out_dir: Path,
    prefix: str,
    part_rows: int,
) -> list[PartFile]:
    """Write the hashes `source_sql` selects (one column named `hash`) as `{prefix}-NNNNN.csv` parts.

    Each part starts with the `header` line, then one hash per line, at most `part_rows` hashes, in hash
    order. No part is written for an empty set. Everything runs inside DuckDB: rows never pass through Python.
    """
    if part_rows < 1:
        raise ValueError("part_rows must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"{prefix}-*.csv"):
        stale.unlink()  # parts of an earlier attempt with another split must not be mistaken for ours
    numbered = out_dir / f"{prefix}.numbered.parquet"
    # Number the sorted hashes once; every part is then a filtered read of row groups in order (min/max
    # statistics skip the others), instead of one sort per part.
    con.execute(
        f"""COPY (
              SELECT hash, (row_number() OVER (ORDER BY hash) - 1) // {int(part_rows)} AS part
              FROM ({source_sql}) WHERE hash IS NOT NULL ORDER BY hash
            ) TO {sql_literal(numbered)} (FORMAT parquet)"""
    )
    counts = con.execute(
        f"SELECT part, count(*) FROM read_parquet({sql_literal(numbered)}) GROUP BY part ORDER BY part"
    ).fetchall()
    parts: list[PartFile] = []
    for part, rows in counts:
        path = out_dir / f"{prefix}-{int(part):05d}.csv"
        con.execute(
            f"""COPY (
                  SELECT hash AS {sql_identifier(header)} FROM read_parquet({sql_literal(numbered)})
                  WHERE part = {int(part)} ORDER BY hash
                ) TO {sql_literal(path)} (FORMAT csv, HEADER true, QUOTE '', ESCAPE '')"""
        )
        parts.append(PartFile(name=path.name, rows=int(rows), md5=file_md5(path)))
    numbered.unlink()
    return parts


def file_md5(path: Path) -> str:
    """MD5 hex of a file's bytes, read in chunks: the `file_signature` TikTok checks (ref §2.4 step 1)."""
    digest = hashlib.md5(usedforsecurity=False)  # a checksum TikTok asks for, not a security use
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
