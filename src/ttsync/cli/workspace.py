"""Workspace commands: `init`, `apply`, `export`, and list/show/add/remove for each kind of object."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ttsync.app import objects
from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import (
    JsonOption,
    WorkspaceOption,
    fail,
    handle_errors,
    open_store,
    print_json,
)

ObjectNameArgument = Annotated[str, typer.Argument(help="Name of the object (see this group's `list`).")]

_out = Console()
_err = Console(stderr=True)


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
    from ttsync.app.workspace.init import init_workspace

    with handle_errors():
        result = init_workspace(directory, sample=sample, rows=rows, seed=seed, force=force)
    if as_json:
        print_json(result.to_dict())
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
    from ttsync.app.retention import save_retention
    from ttsync.app.workspace.apply import apply_config
    from ttsync.app.workspace.layout import Workspace, load_config
    from ttsync.writeback.stored import save_writeback

    with handle_errors():
        ws = Workspace.discover(workspace)
        path = file if file.is_absolute() or file.exists() else ws.root / file
        config = load_config(path)
    with open_store(workspace) as store, handle_errors():
        result = apply_config(store, config)
        save_retention(ws.state_dir, config.retention)
        save_writeback(ws.state_dir, config.writeback)
    if as_json:
        print_json(result.to_dict())
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
    from ttsync.app.retention import load_retention
    from ttsync.app.workspace.apply import export_config
    from ttsync.app.workspace.layout import Workspace
    from ttsync.config.file import dump_config
    from ttsync.writeback.stored import load_writeback

    with open_store(workspace) as store, handle_errors():
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


def _object_group(group_name: str) -> typer.Typer:
    """`ttsync GROUP list|show|add|remove` for one kind of object (`app.objects.KINDS`)."""
    kind = objects.KINDS[group_name].kind
    columns = objects.KINDS[group_name].columns
    group = typer.Typer(help=f"List, show, add and remove {kind}s.", no_args_is_help=True)
    a_kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"

    @group.command("list")
    def list_cmd(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
        with open_store(workspace) as store, handle_errors():
            items = objects.list_objects(store, group_name)
        if as_json:
            print_json([item.model_dump(mode="json") for item in items])
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
        with open_store(workspace) as store, handle_errors():
            item = objects.get_object(store, group_name, name)
        data = item.model_dump(mode="json")
        if as_json:
            print_json(data)
        else:
            sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    show_cmd.__doc__ = f"Show one {kind} (secrets redacted)."

    @group.command("add")
    def add_cmd(
        file: Annotated[Path, typer.Option("--file", "-f", help="YAML file holding one object.")],
        workspace: WorkspaceOption = None,
        as_json: JsonOption = False,
    ) -> None:
        with handle_errors():
            item = objects.load_object_file(group_name, file)
            root = Workspace.discover(workspace).root
        with open_store(workspace) as store, handle_errors():
            added = objects.add_object(store, group_name, item, root)
        for warning in added.warnings:
            _err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        if as_json:
            print_json({"kind": kind, "name": added.name, "change": added.change})
        else:
            _out.print(f"{kind} {added.name!r}: {added.change}", highlight=False)

    add_cmd.__doc__ = f"Create or update {a_kind} from a YAML file (same fields as in ttsync.yaml)."

    @group.command("remove")
    def remove_cmd(
        name: ObjectNameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
    ) -> None:
        with open_store(workspace) as store, handle_errors():
            removed = objects.remove_object(store, group_name, name)
        if not removed:
            raise fail(f"{kind} {name!r} does not exist: see `ttsync {group_name} list`")
        if as_json:
            print_json({"kind": kind, "name": name, "removed": True})
        else:
            _out.print(f"removed {kind} {name!r}", highlight=False)

    remove_cmd.__doc__ = f"Remove {a_kind} (refused while other objects use it)."
    return group


sources_app = _object_group("sources")
destinations_app = _object_group("destinations")
templates_app = _object_group("templates")
orchestrations_app = _object_group("orchestrations")
credentials_app = _object_group("credentials")


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
