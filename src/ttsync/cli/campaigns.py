"""`ttsync campaigns ...` and `ttsync segments list`: campaigns on the audience engine (docs/campaigns.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from ttsync.app import queries
from ttsync.app.campaigns import campaign_report, plan_campaign, run_campaign
from ttsync.app.workspace.layout import Store, Workspace
from ttsync.cli._common import EXIT_FAILED, JsonOption, WorkspaceOption, handle_errors, open_store, print_json

app = typer.Typer(help="Campaigns: segments split into sub-audiences and a holdout (docs/campaigns.md).")
segments_app = typer.Typer(help="Segments: named queries that campaigns combine (docs/campaigns.md).")

NameArgument = Annotated[str, typer.Argument(help="The campaign's name.")]
TodayOption = Annotated[
    str | None, typer.Option("--today", help="The date to run as (YYYY-MM-DD; default: today, UTC).")
]


def _today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--today {value!r} is not a date: write it as YYYY-MM-DD") from None


@contextmanager
def _opened(workspace: Path | None) -> Iterator[tuple[Workspace, Store]]:
    """The workspace and its store, errors printed the CLI's way (what every command here starts with)."""
    with open_store(workspace) as store, handle_errors():
        yield Workspace.discover(workspace), store


def _emit(data: Any, as_json: bool, lines: Callable[[], None]) -> None:
    """`data` as JSON with --json, else what `lines` prints."""
    if as_json:
        print_json(data)
    else:
        lines()


@app.command("list")
def list_campaigns(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the campaigns."""
    with _opened(workspace) as (_, store):
        items = [c.model_dump(mode="json") for c in queries.list_campaigns(store)]

    def lines() -> None:
        for item in items:
            typer.echo(f"{item['name']}\t{item['timing']}\t{item['audience']}\tlaunch {item['launch_date']}")

    _emit(items, as_json, lines)


@app.command("plan")
def plan(
    name: NameArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    today: TodayOption = None,
) -> None:
    """Show each group's size, the audiences it goes to and warnings; sends nothing."""
    with _opened(workspace) as (ws, store):
        result = plan_campaign(ws, store, name, today=_today(today))

    def lines() -> None:
        for group, size in result["sizes"].items():
            typer.echo(f"{group}: {size}")
        for item in result["deliveries"]:
            typer.echo(f"{item['group']} -> {item['destination']}: {item['audience_name']!r}")
        for warning in result["warnings"]:
            typer.echo(f"warning: {warning}")

    _emit(result, as_json, lines)


@app.command("run")
def run(
    name: NameArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    today: TodayOption = None,
) -> None:
    """Send every sub-audience to its destinations now (nothing before the launch date)."""
    with _opened(workspace) as (ws, store):
        outcome = run_campaign(ws, store, name, today=_today(today))

    def lines() -> None:
        typer.echo(f"campaign {outcome.campaign}: {outcome.status}, holdout {outcome.holdout}")
        for item in outcome.deliveries:
            state = "ok" if item["ok"] else "FAILED"
            typer.echo(f"  {item['group']} -> {item['destination']} ({item['audience_name']}): {state}")

    _emit(outcome.to_dict(), as_json, lines)
    if not outcome.ok:
        raise typer.Exit(code=EXIT_FAILED)


@app.command("report")
def report(name: NameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Sizes per group and holdout over the recorded runs."""
    with _opened(workspace) as (ws, store):
        queries.get_campaign(store, name)  # an unknown name is an error, not an empty report
        runs = campaign_report(ws, name)

    def lines() -> None:
        for item in runs:
            sizes = ", ".join(f"{k} {v}" for k, v in item["sizes"].items())
            typer.echo(f"{item['date']} {item['status']}: {sizes}")

    _emit(runs, as_json, lines)


@segments_app.command("list")
def list_segments(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the segments."""
    with _opened(workspace) as (_, store):
        items = [s.model_dump(mode="json") for s in queries.list_segments(store)]

    def lines() -> None:
        for item in items:
            typer.echo(f"{item['name']}\t{item['source']}\tkey {item['key_column']}")

    _emit(items, as_json, lines)


def register(main: typer.Typer) -> None:
    """Add `campaigns` and `segments` to the main app."""
    main.add_typer(app, name="campaigns")
    main.add_typer(segments_app, name="segments")
