"""`ttsync campaigns ...` and `ttsync segments list`: campaigns on the audience engine (docs/campaigns.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from ttsync.app.campaigns import campaign_report, plan_campaign, preview_segment, run_campaign
from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import EXIT_FAILED, JsonOption, WorkspaceOption, handle_errors, open_store, print_json
from ttsync.store import repos

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


def _workspace(path: Path | None) -> Workspace:
    return Workspace.discover(path)


@app.command("list")
def list_campaigns(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the campaigns."""
    with open_store(workspace) as store, handle_errors():
        items = [c.model_dump(mode="json") for c in repos.list_campaigns(store)]
    if as_json:
        print_json(items)
        return
    for item in items:
        typer.echo(f"{item['name']}\t{item['timing']}\t{item['audience']}\tlaunch {item['launch_date']}")


@app.command("plan")
def plan(
    name: NameArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    today: TodayOption = None,
) -> None:
    """Each group's size; per group and destination the audience name, adds, removes, deferred (learning
    phase) and rejects by reason; warnings. Sends nothing."""
    with open_store(workspace) as store, handle_errors():
        result = plan_campaign(_workspace(workspace), store, name, today=_today(today))
    if as_json:
        print_json(result)
        return
    for group, size in result["sizes"].items():
        typer.echo(f"{group}: {size}")
    for item in result["deliveries"]:
        rejected = ", ".join(f"{k} {v:,}" for k, v in sorted(item["rejected_by_reason"].items())) or "none"
        typer.echo(
            f"{item['group']} -> {item['destination']} {item['audience_name']!r}: +{item['adds']:,} "
            f"-{item['removes']:,}, deferred +{item['deferred_adds']:,} -{item['deferred_removes']:,}, "
            f"rejected: {rejected}"
        )
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}")


@app.command("run")
def run(
    name: NameArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    today: TodayOption = None,
) -> None:
    """Send every sub-audience to its destinations now (nothing before the launch date)."""
    with open_store(workspace) as store, handle_errors():
        outcome = run_campaign(_workspace(workspace), store, name, today=_today(today))
    if as_json:
        print_json(outcome.to_dict())
    else:
        typer.echo(f"campaign {outcome.campaign}: {outcome.status}, holdout {outcome.holdout}")
        for item in outcome.deliveries:
            state = "ok" if item["ok"] else "FAILED"
            typer.echo(f"  {item['group']} -> {item['destination']} ({item['audience_name']}): {state}")
    if not outcome.ok:
        raise typer.Exit(code=EXIT_FAILED)


@app.command("report")
def report(name: NameArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Sizes per group and holdout over the recorded runs."""
    with open_store(workspace) as store, handle_errors():
        repos.get_campaign(store, name)  # an unknown name is an error, not an empty report
        runs = campaign_report(_workspace(workspace), name)
    if as_json:
        print_json(runs)
        return
    for item in runs:
        sizes = ", ".join(f"{k} {v}" for k, v in item["sizes"].items())
        typer.echo(f"{item['date']} {item['status']}: {sizes}")


@segments_app.command("list")
def list_segments(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the segments."""
    with open_store(workspace) as store, handle_errors():
        items = [s.model_dump(mode="json") for s in repos.list_segments(store)]
    if as_json:
        print_json(items)
        return
    for item in items:
        typer.echo(f"{item['name']}\t{item['source']}\tkey {item['key_column']}")


@segments_app.command("preview")
def preview(
    name: Annotated[str, typer.Argument(help="The segment's name.")],
    region: Annotated[
        str | None, typer.Option("--region", help="Default region of phones without +/00, e.g. US.")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Size, identifier coverage per type, a match-quality estimate and the most frequent rejection reasons
    (counts only, never a value); sends nothing."""
    with open_store(workspace) as store, handle_errors():
        result = preview_segment(_workspace(workspace), store, name, region=region)
    if as_json:
        print_json(result)
        return
    quality = result["match_quality"]
    typer.echo(f"segment {result['segment']}: {result['size']:,} people")
    for kind, item in result["coverage"].items():
        typer.echo(
            f"  {kind}: {item['people']:,} people ({item['share_of_people']:.1%}), "
            f"{item['valid']:,} valid of {item['present']:,} values"
        )
    typer.echo(
        f"  match quality: {quality['estimate']} ({quality['share_matchable']:.1%} of people have a usable "
        "identifier; TikTok matches a share of them)"
    )
    for item in result["rejections"]:
        typer.echo(f"  rejected {item['type']} {item['reason']}: {item['count']:,}")
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}")


def register(main: typer.Typer) -> None:
    """Add `campaigns` and `segments` to the main app."""
    main.add_typer(app, name="campaigns")
    main.add_typer(segments_app, name="segments")
