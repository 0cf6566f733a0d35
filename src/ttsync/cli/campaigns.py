"""`ttsync campaigns ...` and `ttsync segments list`: campaigns on the audience engine (docs/campaigns.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from ttsync.app import campaigns as use_cases
from ttsync.app.campaigns import campaign_report, plan_campaign, run_campaign
from ttsync.app.privacy_list import add_suppression_hashes, listed
from ttsync.app.privacy_list import forget as forget_request
from ttsync.app.privacy_now import DEFAULT_WAIT_SECONDS, forget_now
from ttsync.app.privacy_now import report as forget_report
from ttsync.app.segments import preview_segment
from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import EXIT_FAILED, JsonOption, WorkspaceOption, handle_errors, open_store, print_json

app = typer.Typer(help="Campaigns: segments split into sub-audiences and a holdout (docs/campaigns.md).")
segments_app = typer.Typer(help="Segments: named queries that campaigns combine (docs/campaigns.md).")
suppression_app = typer.Typer(
    help="Suppression lists: hashed identifiers no audience of the workspace may hold (docs/campaigns.md)."
)

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
        items = [c.model_dump(mode="json") for c in use_cases.list_campaigns(store)]
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
            f"suppressed: {item['suppressed']:,} (-{item['privacy_removes']:,} now), rejected: {rejected}"
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
        runs = campaign_report(_workspace(workspace), name, store=store)
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
        items = [s.model_dump(mode="json") for s in use_cases.list_segments(store)]
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
    suppressed = result["suppressed"]
    typer.echo(
        f"  suppressed: {suppressed['identifiers']:,} identifiers, {suppressed['people']:,} people left with none "
        "(forget requests and suppression, left out as a run leaves them out)"
    )
    for item in result["rejections"]:
        typer.echo(f"  rejected {item['type']} {item['reason']}: {item['count']:,}")
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}")


_FILE_KINDS = ("email", "phone", "maid", "key")


def _read_forget_file(path: Path) -> dict[str, list[str]]:
    """`KIND:VALUE` per line (email, phone, maid or key); blank lines and `#` comments are skipped."""
    found: dict[str, list[str]] = {kind: [] for kind in _FILE_KINDS}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise typer.BadParameter(f"--file {path}: cannot read it ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        kind, sep, value = text.partition(":")
        if not sep or kind.strip().lower() not in _FILE_KINDS or not value.strip():
            # The line's text is not quoted back: it may be personal data.
            raise typer.BadParameter(
                f"--file {path}: line {number} is not KIND:VALUE with KIND one of {', '.join(_FILE_KINDS)}"
            )
        found[kind.strip().lower()].append(value.strip())
    return found


def forget(
    email: Annotated[
        list[str] | None, typer.Option("--email", help="An e-mail to forget (repeatable).")
    ] = None,
    phone: Annotated[
        list[str] | None,
        typer.Option("--phone", help="A phone number, international (+1...) or with --region."),
    ] = None,
    maid: Annotated[
        list[str] | None, typer.Option("--maid", help="A mobile advertising id (IDFA or AAID).")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="A warehouse key (the key column's value).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A file of KIND:VALUE lines (email, phone, maid, key).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="Region of national phone numbers.")] = None,
    now: Annotated[
        bool, typer.Option("--now", help="Also remove every forgotten identifier from every audience now.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="With --now: seconds to wait for a sync running on an audience before leaving it busy.",
        ),
    ] = DEFAULT_WAIT_SECONDS,
    show_report: Annotated[
        bool,
        typer.Option("--report", help="Show, per forgotten identifier and audience, whether it is held."),
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget people: the values are hashed at once (never stored), removed from every audience of the
    workspace at its next run whatever the guards (or at once with --now), never sent again, and recorded in
    the audit log. `--report` alone shows where forgotten identifiers are still held."""
    if show_report:
        if email or phone or maid or key or file or now:
            raise typer.BadParameter("--report shows the forget requests so far: give it alone (with --json)")
        _forget_report(workspace, as_json)
        return
    values = _read_forget_file(file) if file is not None else {kind: [] for kind in _FILE_KINDS}
    with open_store(workspace) as store, handle_errors():
        added = forget_request(
            _workspace(workspace).state_dir,
            store,
            emails=[*(email or []), *values["email"]],
            phones=[*(phone or []), *values["phone"]],
            maids=[*(maid or []), *values["maid"]],
            keys=[*(key or []), *values["key"]],
            region=region,
        )
        applied = forget_now(_workspace(workspace), store, added.request, wait_seconds=wait) if now else None
    failed = applied is not None and any(a["status"] in ("failed", "busy") for a in applied["audiences"])
    if as_json:
        print_json(added.to_dict() | ({"now": applied["audiences"]} if applied else {}))
        if failed:
            raise typer.Exit(1)
        return
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(added.rejected.items()))
    typer.echo(
        f"forget request {added.request}: {added.identifiers} identifiers and {added.keys} keys; removed from "
        "every audience at its next run" + (f" (refused: {rejected})" if rejected else "")
    )
    for audience in applied["audiences"] if applied else []:
        typer.echo(
            f"  audience {audience['audience_id']} ({audience['orchestration']}): {audience['status']}"
            + (f", {len(audience['removed'])} removed" if audience["removed"] else "")
            + (f" — {audience['reason']}" if audience.get("reason") else "")
        )
    if failed:
        raise typer.Exit(1)  # an audience still holds them: the reason is printed above


def _forget_report(workspace: Path | None, as_json: bool) -> None:
    """`ttsync forget --report`: one line per forgotten identifier (hash prefix) and audience."""
    with open_store(workspace) as store, handle_errors():
        rows = forget_report(_workspace(workspace), store)
    if as_json:
        print_json({"rows": rows})
        return
    if not rows:
        typer.echo("no forgotten identifier, or no audience yet")
    for row in rows:
        typer.echo(
            f"{row['request']}\t{row['id_schema']}:{row['hash_prefix']}\t{row['audience_id']}\t"
            + ("HELD" if row["held"] else "not held" if row["snapshot"] else "no snapshot")
            + ("\tremoval sent" if row["removal_sent"] else "")
        )


@suppression_app.command("add")
def suppression_add(
    name: Annotated[str, typer.Argument(help="The list's name (for the audit log and write-back).")],
    file: Annotated[Path, typer.Option("--file", help="SHA-256 hex digests, one a line.")],
    user_id_type: Annotated[str, typer.Option("--type", help="EMAIL, PHONE, IDFA or AAID.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an uploaded list of hashed identifiers: nobody on it is sent by any audience of the workspace,
    and those already sent are removed at the next run."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise typer.BadParameter(f"--file {file}: cannot read it ({exc.strerror})") from None
    with open_store(workspace) as store, handle_errors():
        added = add_suppression_hashes(_workspace(workspace).state_dir, store, name, user_id_type, lines)
    if as_json:
        print_json(added.to_dict())
        return
    typer.echo(
        f"suppression list {name}: {added.identifiers} identifiers added; refused: {added.rejected or 'none'}"
    )


@suppression_app.command("list")
def suppression_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """How many identifiers and keys forget requests and suppression lists hold (counts only)."""
    counts = listed(_workspace(workspace).state_dir)
    if as_json:
        print_json(counts)
        return
    for origin, n in counts.items():
        typer.echo(f"{origin}\t{n}")


def register(main: typer.Typer) -> None:
    """Add `campaigns` and `segments` to the main app."""
    main.add_typer(app, name="campaigns")
    main.add_typer(segments_app, name="segments")
    main.add_typer(suppression_app, name="suppression")
    main.command("forget")(forget)
