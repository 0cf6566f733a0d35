"""`ttsync rowkey`: print the stored row key of warehouse key values (docs/writeback.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ttsync.cli.workspace import JsonOption, WorkspaceOption, _errors, _fail, _print_json, _store


def rowkey(
    values: Annotated[
        list[str] | None,
        typer.Argument(
            help="Key values (e.g. customer ids); '-' or none: read them from stdin, one per line."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the row key each value is stored as in run folders and write-back tables, one per line, in order
    (identifier-like keys are keyed-hashed with the workspace's key; other values print unchanged)."""
    from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher

    given = values or ["-"]
    if given == ["-"]:
        given = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not given:
        raise _fail("no values given: pass key values as arguments or one per line on stdin")
    with _store(workspace) as store, _errors():
        keys = stored_row_keys(workspace_hasher(store), given)
    if as_json:
        _print_json({"row_keys": keys})
        return
    sys.stdout.write("".join(f"{key}\n" for key in keys))


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("rowkey")(rowkey)
