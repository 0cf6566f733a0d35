"""`ttsync identity check` as a real subprocess, on real CSV and Parquet files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROWS = [
    ("c1", " Alice@Example.com ", "(213) 373-4253", "6D92078A-8246-4BA4-AE5B-76104861E7DC", "US"),
    ("c2", "not-an-email", "+44 20 7946 0018", "00000000-0000-0000-0000-000000000000", "GB"),
    ("c3", "", "020 7946 0019", "", "GB"),
    ("c4", "alice@example.com", "12", "", "FR"),
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "ttsync", "identity", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _write_csv(path: Path) -> None:
    lines = ["id,email,phone,maid,country"] + [",".join(r) for r in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_check_csv_json(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    _write_csv(csv)
    result = _run(
        str(csv), "--column", "email:email", "--column", "phone:phone", "-c", "maid:aaid",
        "--region", "US", "--region-column", "country", "--key", "id", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    types = {t["id_schema"]: t for t in report["types"]}
    assert types["EMAIL_SHA256"]["present"] == 3  # the empty CSV field is null: absent
    assert types["EMAIL_SHA256"]["valid"] == 2
    assert types["EMAIL_SHA256"]["rejected"] == {"invalid_email": 1}
    assert types["EMAIL_SHA256"]["duplicates"] == 1  # " Alice@Example.com " == "alice@example.com"
    assert types["PHONE_SHA256"]["valid"] == 3
    assert types["PHONE_SHA256"]["rejected"] == {"invalid_phone": 1}
    assert types["AAID_SHA256"]["rejected"] == {"maid_all_zero": 1}
    assert report["people"] == 4
    assert report["people_matchable"] == 4
    assert "Alice" not in result.stdout
    assert "7946" not in result.stdout


def test_check_parquet_table_without_key(tmp_path: Path) -> None:
    path = tmp_path / "customers.parquet"
    table = pa.table(
        {
            "email": [r[1] or None for r in ROWS],
            "phones": pa.array([[r[2], "+33 1 42 68 53 00"] for r in ROWS], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)
    result = _run(str(path), "-c", "email:email", "-c", "phones:phone", "--region", "GB")
    assert result.returncode == 0, result.stderr
    assert "EMAIL_SHA256" in result.stdout
    assert "PHONE_SHA256" in result.stdout
    assert "People: 4" in result.stdout


def test_check_reports_bad_column_spec_and_missing_column(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    _write_csv(csv)
    bad_kind = _run(str(csv), "--column", "email:fax")
    assert bad_kind.returncode == 2
    assert "KIND" in bad_kind.stderr
    missing = _run(str(csv), "--column", "nope:email")
    assert missing.returncode == 2
    assert "nope" in missing.stderr
