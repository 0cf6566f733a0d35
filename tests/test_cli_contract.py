"""Every `ttsync` command keeps the CLI's promises: help renders, every parameter has help, flags show as
`--plan` (not `--plan <bool>`), `--json` and `--workspace` are accepted (the README names the exceptions), and
errors in `--json` mode are JSON with a documented exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ttsync.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
# Commands that do not read an existing workspace, so take no --workspace (the README lists them).
NO_WORKSPACE = {"init", "emulator serve", "identity check", "version"}


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command

    yield from walk(typer.main.get_command(app), [])


COMMANDS = dict(_commands())


def test_the_walk_finds_the_commands() -> None:
    for expected in ("run", "workflows show", "sources add", "runs prune", "emulator serve", "version"):
        assert expected in COMMANDS


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_command_contract(path: str) -> None:
    command = COMMANDS[path]
    options = {opt for param in command.params for opt in param.opts}
    assert "--json" in options, f"`ttsync {path}` has no --json"
    if path not in NO_WORKSPACE:
        assert "--workspace" in options, f"`ttsync {path}` has no --workspace"
    for param in command.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"`ttsync {path}`: {param.name} has no help"
    result = CliRunner().invoke(app, [*path.split(), "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for flag in ("--json",):
        assert re.search(rf"{flag}\s+<", result.output) is None
    text = " ".join([command.help or ""] + [getattr(p, "help", None) or "" for p in command.params])
    assert re.search(r"\ba [aeio]\w", text) is None, f"`ttsync {path}`: 'a' before a vowel in {text!r}"


def test_readme_states_the_exceptions_exactly() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if "--workspace DIR" in line and "--json" in line)
    for path in NO_WORKSPACE:
        assert f"`ttsync {path}`" in line, line
    assert "## Exit codes" in readme


def _ttsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_errors_in_json_mode_are_json(tmp_path: Path) -> None:
    assert _ttsync("init", str(tmp_path / "ws"), cwd=tmp_path).returncode == 0
    cases = [
        (("workflows", "show", "0badc0de", "--json"), 2),  # unknown object
        (("run", "--json"), 2),  # usage: missing argument
        (("run", "high-value-customers", "--bogus", "--json"), 2),  # usage: unknown option
        (("sources", "show", "nope", "--json"), 2),
    ]
    for args, code in cases:
        done = _ttsync(*args, cwd=tmp_path / "ws")
        assert done.returncode == code, (args, done.stdout, done.stderr)
        document = json.loads(done.stdout)
        assert set(document) >= {"error", "resolution", "exit_code"}, document
        assert document["exit_code"] == code
        assert document["error"]
    plain = _ttsync("workflows", "show", "0badc0de", cwd=tmp_path / "ws")
    assert plain.returncode == 2
    assert plain.stdout == ""
    assert "does not exist" in plain.stderr
