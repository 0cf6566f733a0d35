"""`ttsync campaigns ...` and `ttsync segments list`: campaigns on the audience engine (docs/campaigns.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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


def _emit(data: Any, as_json: bool, lines: Callable[[], Iterable[str]]) -> None:
    """`data` as JSON with --json, else the lines `lines` makes."""
    if as_json:
        print_json(data)
        return
    for line in lines():
        typer.echo(line)


@app.command("list")
def list_campaigns(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the campaigns."""
    with _opened(workspace) as (_, store):
        items = [c.model_dump(mode="json") for c in queries.list_campaigns(store)]
    _emit(
        items,
        as_json,
        lambda: (f"{c['name']}\t{c['timing']}\t{c['audience']}\tlaunch {c['launch_date']}" for c in items),
    )


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

    def lines() -> Iterator[str]:
        yield from (f"{group}: {size}" for group, size in result["sizes"].items())
        yield from (
            f"{d['group']} -> {d['destination']}: {d['audience_name']!r}" for d in result["deliveries"]
        )
        yield from (f"warning: {warning}" for warning in result["warnings"])

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

    def lines() -> Iterator[str]:
        yield f"campaign {outcome.campaign}: {outcome.status}, holdout {outcome.holdout}"
        for item in outcome.deliveries:
            state = "ok" if item["ok"] else "FAILED"
            yield f"  {item['group']} -> {item['destination']} ({item['audience_name']}): {state}"

    _emit(outcome.to_dict(), as_json, lines)
    if not outcome.ok:
        raise typer.Exit(code=EXIT_FAILED)


@app.command("report")
def report(name: NameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Sizes per group and holdout over the recorded runs."""
    with _opened(workspace) as (ws, store):
        queries.get_campaign(store, name)  # an unknown name is an error, not an empty report
        runs = campaign_report(ws, name)

    def lines() -> Iterator[str]:
        for item in runs:
            sizes = ", ".join(f"{k} {v}" for k, v in item["sizes"].items())
            yield f"{item['date']} {item['status']}: {sizes}"

    _emit(runs, as_json, lines)


@segments_app.command("list")
def list_segments(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the segments."""
    with _opened(workspace) as (_, store):
        items = [s.model_dump(mode="json") for s in queries.list_segments(store)]
    _emit(items, as_json, lambda: (f"{s['name']}\t{s['source']}\tkey {s['key_column']}" for s in items))


def register(main: typer.Typer) -> None:
    """Add `campaigns` and `segments` to the main app."""
    main.add_typer(app, name="campaigns")
    main.add_typer(segments_app, name="segments")
