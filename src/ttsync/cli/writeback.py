"""`ttsync rowkey`: print the stored row key of warehouse key values (docs/writeback.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ttsync.cli._common import JsonOption, WorkspaceOption, fail, handle_errors, open_store, print_json


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
    from ttsync.app.queries import stored_row_keys

    given = values or ["-"]
    if given == ["-"]:
        given = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not given:
        raise fail("no values given: pass key values as arguments or one per line on stdin")
    with open_store(workspace) as store, handle_errors():
        keys = stored_row_keys(store, given)
    if as_json:
        print_json({"row_keys": keys})
        return
    sys.stdout.write("".join(f"{key}\n" for key in keys))


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("rowkey")(rowkey)
