"""`ttsync identity ...`: check identifier columns of a CSV or Parquet file. Sends nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console

from ttsync.identity import ColumnSpec, Preparer
from ttsync.identity.spec import KINDS, HashState
from ttsync.redact import redact_text

app = typer.Typer(
    help="Normalize, validate and hash identifiers (locally; nothing is sent).", no_args_is_help=True
)

ROW_KEY = "row_key"
BATCH_ROWS = 262_144


def parse_column_option(
    text: str, region: str | None, region_column: str | None, delimiter: str | None
) -> ColumnSpec:
    """`COLUMN:KIND[:HASH_STATE]` -> ColumnSpec (hash state raw, sha256, md5 or auto)."""
    parts = text.rsplit(":", 2) if text.count(":") >= 2 else text.rsplit(":", 1)
    if len(parts) < 2 or parts[1] not in KINDS:
        raise typer.BadParameter(
            f"expected COLUMN:KIND[:HASH_STATE] with KIND one of {', '.join(KINDS)}, got {text!r}"
        )
    state = parts[2] if len(parts) == 3 else "raw"
    if state not in ("raw", "sha256", "md5", "auto"):
        raise typer.BadParameter(f"hash state must be raw, sha256, md5 or auto, got {state!r}")
    try:
        return ColumnSpec(
            column=parts[0],
            kind=parts[1],  # checked against KINDS above
            hash_state=cast(HashState, state),
            region=region,
            region_column=region_column if parts[1] == "phone" else None,
            delimiter=delimiter,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def read_batches(path: Path, needed: list[str], key: str | None) -> Iterator[pa.RecordBatch]:
    """Stream the file's needed columns as record batches of strings, with a row_key column."""
    if path.suffix.lower() in (".parquet", ".pq"):
        source: Iterator[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(
            batch_size=BATCH_ROWS, columns=needed
        )
    else:
        # Every column is read as text: phone numbers and ids keep their leading zeros and `+`.
        header = pacsv.open_csv(path).schema.names
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=needed,
            strings_can_be_null=True,
        )
        source = iter(
            pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24), convert_options=convert)
        )
    row = 0
    for batch in source:
        if key is None:
            keys = pa.array([str(i) for i in range(row + 1, row + 1 + batch.num_rows)], pa.string())
            batch = pa.RecordBatch.from_arrays([*batch.columns, keys], names=[*batch.schema.names, ROW_KEY])
        row += batch.num_rows
        yield batch


@app.command()
def check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet file.")],
    column: Annotated[
        list[str],
        typer.Option("--column", "-c", help="COLUMN:KIND[:HASH_STATE], e.g. email:email, phone:phone."),
    ],
    region: Annotated[
        str | None, typer.Option(help="Default region for phones without +/00, e.g. US.")
    ] = None,
    region_column: Annotated[str | None, typer.Option(help="Column with each row's region (phones).")] = None,
    key: Annotated[
        str | None, typer.Option(help="Column with the row key (default: the row number).")
    ] = None,
    delimiter: Annotated[str | None, typer.Option(help="Split cells holding several values.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Print the match-quality report of FILE's identifier columns. Nothing is sent anywhere."""
    specs = [parse_column_option(c, region, region_column, delimiter) for c in column]
    needed = list(
        dict.fromkeys(
            [s.column for s in specs] + ([region_column] if region_column else []) + ([key] if key else [])
        )
    )
    preparer = Preparer(specs, key_column=key or ROW_KEY)
    try:
        for batch in read_batches(file, needed, key):
            preparer.process(batch)
    except (KeyError, ValueError, pa.ArrowInvalid) as exc:
        from ttsync.cli._common import fail

        # Identifiers are removed; quotes are kept: Arrow quotes the column names the user has to fix.
        raise fail(
            f"Cannot read {file.name}: {redact_text(str(exc))}. Check the column names and the file format."
        ) from None
    finally:
        preparer.close()
    report = preparer.report()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        report.render(Console())
