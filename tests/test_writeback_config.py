"""The `writeback:` block: validation with fix-it messages, targets and overrides, apply/export round trip,
and `ttsync rowkey` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audience_env import ORCH, Env
from ttsync.config.file import dump_config, parse_config
from ttsync.config.models import Source
from ttsync.config.writeback import ALL_TABLES, WritebackConfig
from ttsync.errors import ConfigError
from ttsync.store import repos
from ttsync.writeback import resolve_target


def _config(block: str) -> WritebackConfig | None:
    return parse_config("version: 1\n" + block, environ={}).writeback


def test_absent_is_off_bare_block_is_on_with_defaults(tmp_path: Path) -> None:
    source = Source(name="warehouse", kind="duckdb", path="warehouse.duckdb")
    assert resolve_target(_config(""), ORCH, source, tmp_path) is None
    target = resolve_target(_config("writeback:\n"), ORCH, source, tmp_path)
    assert target is not None
    assert (target.kind, target.location, target.schema, target.tables) == (
        "duckdb", str(tmp_path / "warehouse.duckdb"), "ttsync", ALL_TABLES,
    )  # fmt: skip


def test_overrides_per_orchestration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Source(name="warehouse", kind="duckdb", path="warehouse.duckdb")
    config = _config(
        "writeback:\n  path: results.duckdb\n  schema: results\n  orchestrations:\n"
        "    a: {enabled: false}\n    b: {url_env: B_URL, tables: [ttsync_runs]}\n"
    )
    assert resolve_target(config, "a", source, tmp_path) is None
    monkeypatch.setenv("B_URL", "postgresql+psycopg://u@db/x")
    b = resolve_target(config, "b", source, tmp_path)
    assert b is not None
    assert (b.kind, b.location, b.schema, b.tables, b.described) == (
        "sqlalchemy", "postgresql+psycopg://u@db/x", "results", ("ttsync_runs",), "$B_URL",
    )  # fmt: skip
    other = resolve_target(config, "c", source, tmp_path)
    assert other is not None
    assert other.location == str(tmp_path / "results.duckdb")


@pytest.mark.parametrize(
    ("block", "fix"),
    [
        ("writeback:\n  schema: 'x; DROP TABLE y'\n", "schema is a plain SQL name"),
        ("writeback:\n  url: postgresql://u:secret@db/x\n", "use `url_env`"),
        ("writeback:\n  path: a.duckdb\n  url_env: X\n", "give one target"),
        ("writeback:\n  tables: [ttsync_everything]\n", "ttsync_runs"),
        ("writeback:\n  colour: blue\n", "unknown setting"),
    ],
)
def test_bad_settings_say_how_to_fix_them(block: str, fix: str) -> None:
    with pytest.raises(ConfigError) as error:
        _config(block)
    assert fix in str(error.value)
    assert "secret" not in str(error.value)


def test_file_sources_need_a_target(tmp_path: Path) -> None:
    csv = Source(name="orders", kind="csv", path="orders.csv")
    with pytest.raises(ConfigError, match=r"set `writeback\.path`"):
        resolve_target(_config("writeback:\n"), ORCH, csv, tmp_path)


def test_export_round_trip_keeps_the_block() -> None:
    text = "version: 1\nwriteback:\n  schema: results\n  orchestrations:\n    a:\n      enabled: false\n"
    config = parse_config(text, environ={})
    again = parse_config(dump_config(config), environ={})
    assert again.writeback == config.writeback


def _cli(env: Env, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = os.environ | env.environ
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args, "--workspace", str(env.workspace.root)],
        env=environ, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_apply_writes_the_block_and_export_prints_it_and_rowkey_prints_keys(env: Env) -> None:
    config = env.workspace.config_path
    config.write_text(
        config.read_text().replace("# writeback:\n#   schema: ttsync", "writeback:\n  schema: out")
    )
    assert _cli(env, "apply", "-f", str(config)).returncode == 0
    exported = _cli(env, "export")
    assert "writeback:\n  schema: out\n" in exported.stdout
    run = _cli(env, "run", ORCH, "--json")
    assert run.returncode == 0, run.stderr
    assert '"name": "writeback"' in run.stdout

    import duckdb

    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        stored = {
            r[0] for r in con.execute("SELECT DISTINCT row_key FROM out.ttsync_row_outcomes").fetchall()
        }
        ids = [r[0] for r in con.execute("SELECT amperity_id FROM Merged_Customers LIMIT 50").fetchall()]
    by_args = _cli(env, "rowkey", *ids[:3])
    by_stdin = _cli(env, "rowkey", "-", stdin="".join(f"{i}\n" for i in ids))
    assert by_args.returncode == by_stdin.returncode == 0
    keys = by_stdin.stdout.splitlines()
    assert by_args.stdout.splitlines() == keys[:3]
    assert len(keys) == len(ids)
    assert all(key.startswith("hk:") for key in keys)
    assert not any(i in by_stdin.stdout for i in ids)  # the raw ids are not echoed
    assert stored & set(keys)  # the same keys as the write-back tables


def test_cli_retry_task_writeback_rewrites_a_succeeded_workflow(env: Env) -> None:
    import duckdb

    config = env.workspace.config_path
    config.write_text(
        config.read_text().replace("# writeback:\n#   schema: ttsync", "writeback:\n  schema: ttsync")
    )
    assert _cli(env, "apply", "-f", str(config)).returncode == 0
    assert _cli(env, "run", ORCH).returncode == 0
    (workflow,) = [w.id for w in repos.list_workflows(env.store)]
    with duckdb.connect(str(env.workspace.sample_warehouse)) as con:
        before = con.execute("SELECT count(*) FROM ttsync.ttsync_row_outcomes").fetchone()
        con.execute("DROP SCHEMA ttsync CASCADE")  # someone dropped the tables
    plain = _cli(env, "workflows", "retry", workflow[:8])
    assert plain.returncode == 0  # a succeeded workflow: nothing to retry ...
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'ttsync'"
        ).fetchone() == (0,)
    again = _cli(env, "workflows", "retry", workflow[:8], "--task", "writeback", "--json")
    assert again.returncode == 0, again.stderr  # ... unless asked to write it back again
    with duckdb.connect(str(env.workspace.sample_warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ttsync.ttsync_row_outcomes").fetchone() == before
    assert env.emulator.admin.audience_members(env.audience_id())  # TikTok untouched, still synced
