"""What every CLI module shares: the workspace and --json options, exit codes, error printing, opening the store.

Errors are printed redacted (`ttsync.redact`), as JSON on stdout in --json mode, else in red on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import duckdb
import pyarrow as pa
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from ttsync.app.workspace.layout import SecretKeyError, Store, StoreError, Workspace
from ttsync.errors import ConfigError, RunRefusedError, WorkspaceError

# Exit codes (listed in the README) are defined, with their meanings, in `ttsync.exitcodes`.
from ttsync.exitcodes import EXIT_FAILED as EXIT_FAILED
from ttsync.exitcodes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from ttsync.exitcodes import EXIT_USAGE as EXIT_USAGE
from ttsync.redact import redact_error
from ttsync.sources import SourceError

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace folder (default: $TTSYNC_WORKSPACE, else the current folder)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

err_console = Console(stderr=True)


class _Mode:
    """Whether this process was asked for JSON (`--json` anywhere on the command line)."""

    json = False


def set_json_mode(enabled: bool) -> None:
    """Make errors print as JSON on stdout (set by the entry point from the command line)."""
    _Mode.json = enabled


def json_mode() -> bool:
    """True when errors are printed as JSON."""
    return _Mode.json


def error_document(message: str, *, resolution: str | None, exit_code: int) -> dict[str, Any]:
    """The JSON form of an error in `--json` mode (always these keys)."""
    return {"ok": False, "error": message, "resolution": resolution, "exit_code": exit_code}


def fail(message: str, *, resolution: str | None = None, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error (JSON on stdout in --json mode, else red on stderr); return the Exit to raise."""
    if json_mode():
        print_json(error_document(message, resolution=resolution, exit_code=code))
    else:
        err_console.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code=code)


@contextmanager
def handle_errors() -> Iterator[None]:
    # Every message is redacted (`ttsync.redact`): a database, DuckDB or Arrow error quotes the value it
    # failed on. Unexpected errors are reported in one redacted line too: a traceback would print the same
    # raw text.
    try:
        yield
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except ConfigError as exc:
        raise fail(redact_error(exc), resolution="configuration_error") from None
    except RunRefusedError as exc:
        raise fail(str(exc), resolution=exc.resolution_key, code=exc.exit_code) from None
    except (WorkspaceError, SourceError, StoreError, SecretKeyError, ValueError) as exc:
        raise fail(redact_error(exc)) from None
    except (duckdb.Error, pa.ArrowException, SQLAlchemyError) as exc:
        raise fail(f"{type(exc).__name__}: {redact_error(exc)}") from None
    except Exception as exc:
        err_console.print(
            f"[red]error:[/red] unexpected {type(exc).__name__} inside ttsync (a bug: please report it): "
            f"{escape(redact_error(exc))}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(code=1) from None


@contextmanager
def open_store(workspace: Path | None) -> Iterator[Store]:
    with handle_errors():
        store = Workspace.discover(workspace).open_store()
        try:
            yield store
        finally:
            store.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
