"""Workspace commands: `init`, `apply`, `export`, and list/show/add/remove for each kind of object."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import duckdb
import pyarrow as pa
import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from ttsync.errors import RunRefusedError

# Exit codes (listed in the README) are defined, with their meanings, in `ttsync.exitcodes`.
from ttsync.exitcodes import EXIT_FAILED as EXIT_FAILED
from ttsync.exitcodes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from ttsync.exitcodes import EXIT_USAGE as EXIT_USAGE
from ttsync.redact import redact_error
from ttsync.sources import SourceError
from ttsync.store import SecretKeyError, Store, StoreError, repos
from ttsync.workspace.errors import ConfigError, WorkspaceError
from ttsync.workspace.models import DataTemplate, Destination, Orchestration, Source, format_validation_error

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace folder (default: $TTSYNC_WORKSPACE, else the current folder)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ObjectNameArgument = Annotated[str, typer.Argument(help="Name of the object (see this group's `list`).")]

_out = Console()
_err = Console(stderr=True)


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


def _fail(message: str, *, resolution: str | None = None, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error (JSON on stdout in --json mode, else red on stderr); return the Exit to raise."""
    if json_mode():
        _print_json(error_document(message, resolution=resolution, exit_code=code))
    else:
        _err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code=code)


@contextmanager
def _errors() -> Iterator[None]:
    # Every message is redacted (`ttsync.redact`): a database, DuckDB or Arrow error quotes the value it
    # failed on. Unexpected errors are reported in one redacted line too: a traceback would print the same
    # raw text.
    try:
        yield
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except ConfigError as exc:
        raise _fail(redact_error(exc), resolution="configuration_error") from None
    except RunRefusedError as exc:
        raise _fail(str(exc), resolution=exc.resolution_key, code=exc.exit_code) from None
    except (WorkspaceError, SourceError, StoreError, SecretKeyError, ValueError) as exc:
        raise _fail(redact_error(exc)) from None
    except (duckdb.Error, pa.ArrowException, SQLAlchemyError) as exc:
        raise _fail(f"{type(exc).__name__}: {redact_error(exc)}") from None
    except Exception as exc:
        _err.print(
            f"[red]error:[/red] unexpected {type(exc).__name__} inside ttsync (a bug: please report it): "
            f"{escape(redact_error(exc))}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(code=1) from None


@contextmanager
def _store(workspace: Path | None) -> Iterator[Store]:
    from ttsync.workspace.layout import Workspace

    with _errors():
        store = Workspace.discover(workspace).open_store()
        try:
            yield store
        finally:
            store.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------------
# init / apply / export


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    sample: Annotated[
        bool, typer.Option("--sample", help="Also generate the sample DuckDB warehouse.")
    ] = False,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Customers in the sample warehouse.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample generator.")] = 7,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty folder.")] = False,
    writeback: Annotated[
        bool,
        typer.Option(
            "--writeback", help="Turn write-back on in ttsync.yaml (results as tables in the warehouse)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a workspace: ttsync.yaml, state/ (store and key) and optionally a sample warehouse."""
    from ttsync.workspace.init import init_workspace

    with _errors():
        result = init_workspace(
            directory, sample=sample, rows=rows, seed=seed, force=force, writeback=writeback
        )
    if as_json:
        _print_json(result.to_dict())
        return
    for path in result.created:
        _out.print(f"created {path}", highlight=False)
    for table, count in result.sample_counts.items():
        _out.print(f"  {table}: {count:,} rows", highlight=False)
    _out.print(f"next: cd {result.workspace.root} && ttsync apply -f ttsync.yaml", highlight=False)


def apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="Config file to apply.")] = Path("ttsync.yaml"),
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update the objects of a config file in the store (idempotent)."""
    from ttsync.services.retention import save_retention
    from ttsync.workspace.apply import apply_config
    from ttsync.workspace.config import load_config
    from ttsync.workspace.layout import Workspace
    from ttsync.writeback.config import save_writeback

    with _errors():
        ws = Workspace.discover(workspace)
        path = file if file.is_absolute() or file.exists() else ws.root / file
        config = load_config(path)
    with _store(workspace) as store, _errors():
        result = apply_config(store, config)
        save_retention(ws.state_dir, config.retention)
        save_writeback(ws.state_dir, config.writeback)
    if as_json:
        _print_json(result.to_dict())
        return
    table = Table("kind", "name", "change")
    for obj in result.objects:
        color = {"created": "green", "updated": "yellow"}.get(obj.change, "dim")
        table.add_row(obj.kind, obj.name, f"[{color}]{obj.change}[/{color}]")
    _out.print(table)
    for warning in result.warnings:
        _err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the configuration as JSON instead of YAML.")
    ] = False,
) -> None:
    """Write the store's objects as a config file (secrets only as environment-variable names)."""
    from ttsync.services.retention import load_retention
    from ttsync.workspace.apply import export_config
    from ttsync.workspace.config import dump_config
    from ttsync.workspace.layout import Workspace
    from ttsync.writeback.config import load_writeback

    with _store(workspace) as store, _errors():
        config = export_config(store)
        config.retention = load_retention(Workspace.discover(workspace).state_dir)
        config.writeback = load_writeback(Workspace.discover(workspace).state_dir)
        text = (
            json.dumps(
                {
                    "version": config.version,
                    **config.model_dump(mode="json", exclude_defaults=True, by_alias=True),
                },
                indent=2,
            )
            + "\n"
            if as_json
            else dump_config(config)
        )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        _err.print(f"wrote {output}", highlight=False)


# ---------------------------------------------------------------------------------------------------------
# list / show / add / remove per object kind


def _load_object_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold one object (a YAML mapping), as in a ttsync.yaml section entry")
    return data


def _object_group(
    kind: str,
    model: type[BaseModel],
    lister: Callable[[Store], list[Any]],
    getter: Callable[[Store, str], Any],
    saver: Callable[[Store, Any], str],
    remover: Callable[[Store, str], bool],
    columns: list[str],
    group_name: str,
    check: Callable[[Any, Path], None] | None = None,
) -> typer.Typer:
    group = typer.Typer(help=f"List, show, add and remove {kind}s.", no_args_is_help=True)
    a_kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"

    @group.command("list")
    def list_cmd(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
        with _store(workspace) as store, _errors():
            items = lister(store)
        if as_json:
            _print_json(repos.model_rows(items))
            return
        table = Table(*columns)
        for item in items:
            table.add_row(*(str(getattr(item, column)) for column in columns))
        _out.print(table)

    list_cmd.__doc__ = f"List {kind}s."

    @group.command("show")
    def show_cmd(
        name: ObjectNameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
    ) -> None:
        with _store(workspace) as store, _errors():
            item = getter(store, name)
        data = item.model_dump(mode="json")
        if as_json:
            _print_json(data)
        else:
            sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    show_cmd.__doc__ = f"Show one {kind} (secrets redacted)."

    @group.command("add")
    def add_cmd(
        file: Annotated[Path, typer.Option("--file", "-f", help="YAML file holding one object.")],
        workspace: WorkspaceOption = None,
        as_json: JsonOption = False,
    ) -> None:
        from ttsync.workspace.layout import Workspace

        with _errors():
            data = _load_object_file(file)
            try:
                item = model.model_validate(data)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, str(file))) from None
            if check is not None:
                check(item, Workspace.discover(workspace).root)
        with _store(workspace) as store, _errors():
            change = saver(store, item)
        if as_json:
            _print_json({"kind": kind, "name": data.get("name"), "change": change})
        else:
            _out.print(f"{kind} {data.get('name')!r}: {change}", highlight=False)

    add_cmd.__doc__ = f"Create or update {a_kind} from a YAML file (same fields as in ttsync.yaml)."

    @group.command("remove")
    def remove_cmd(
        name: ObjectNameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
    ) -> None:
        with _store(workspace) as store, _errors():
            removed = remover(store, name)
        if not removed:
            raise _fail(f"{kind} {name!r} does not exist: see `ttsync {group_name} list`")
        if as_json:
            _print_json({"kind": kind, "name": name, "removed": True})
        else:
            _out.print(f"removed {kind} {name!r}", highlight=False)

    remove_cmd.__doc__ = f"Remove {a_kind} (refused while other objects use it)."
    return group


def _check_source_files(item: Any, root: Path) -> None:
    """A file source must name files that exist: refused now rather than at the first run."""
    assert isinstance(item, Source)
    if item.kind not in ("duckdb", "csv", "parquet") or not item.path:
        return
    path = Path(item.path).expanduser()
    full = path if path.is_absolute() else root / path
    if any(ch in item.path for ch in "*?["):  # a glob of CSV/Parquet files: at least one must match
        if not list(full.parent.glob(full.name)):
            raise ConfigError(
                f"source {item.name!r}: no file matches {item.path!r} (relative to the workspace {root}): fix "
                "`path` or create the files, then add the source again"
            )
        return
    if not full.exists():
        hint = (
            "`ttsync init --sample` creates warehouse.duckdb" if item.kind == "duckdb" else "check the name"
        )
        raise ConfigError(
            f"source {item.name!r}: {item.path!r} does not exist (relative paths are relative to the workspace "
            f"{root}): fix `path` ({hint}), then add the source again"
        )


sources_app = _object_group(
    "source", Source, repos.list_sources, repos.get_source, repos.save_source, repos.delete_source,
    ["name", "kind", "path", "url_env"], "sources", _check_source_files,
)  # fmt: skip
destinations_app = _object_group(
    "destination", Destination, repos.list_destinations, repos.get_destination, repos.save_destination,
    repos.delete_destination, ["name", "kind", "credential", "environment"], "destinations",
)  # fmt: skip
templates_app = _object_group(
    "data template", DataTemplate, repos.list_templates, repos.get_template, repos.save_template,
    repos.delete_template, ["name", "destination", "available_to_campaigns"], "templates",
)  # fmt: skip
orchestrations_app = _object_group(
    "orchestration", Orchestration, repos.list_orchestrations, repos.get_orchestration, repos.save_orchestration,
    repos.delete_orchestration, ["name", "source", "destination", "template", "schedule"], "orchestrations",
)  # fmt: skip


def _save_credential_entry(store: Store, entry: Any) -> str:
    from ttsync.workspace.config import CredentialEntry

    assert isinstance(entry, CredentialEntry)
    import os

    credential, warnings = entry.to_credential(os.environ)
    for warning in warnings:
        _err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    return repos.save_credential(store, credential)


def _credentials_app() -> typer.Typer:
    from ttsync.workspace.config import CredentialEntry

    return _object_group(
        "credential", CredentialEntry, repos.list_credentials, repos.get_credential, _save_credential_entry,
        repos.delete_credential, ["name", "app_id", "environment", "advertiser_ids"], "credentials",
    )  # fmt: skip


credentials_app = _credentials_app()


def register(app: typer.Typer) -> None:
    """Add the workspace commands and groups to the main `ttsync` app."""
    app.command()(init)
    app.command()(apply)
    app.command()(export)
    app.add_typer(sources_app, name="sources")
    app.add_typer(destinations_app, name="destinations")
    app.add_typer(templates_app, name="templates")
    app.add_typer(orchestrations_app, name="orchestrations")
    app.add_typer(credentials_app, name="credentials")
