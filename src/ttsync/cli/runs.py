"""`ttsync run`, `ttsync workflows ...` and `ttsync notifications`: start, watch and continue runs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ttsync.app import queries
from ttsync.app.runs import RunOutcome, build_continue_run, build_run, continue_run, preview_run, start_run
from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import JsonOption, WorkspaceOption, handle_errors, open_store, print_json
from ttsync.cli.progress import RichReporter
from ttsync.destinations.tiktok.pipelines.audience import RunOptions
from ttsync.exitcodes import for_failed_workflow
from ttsync.store.records import WorkflowRecord
from ttsync.workflows.engine import workflow_warnings
from ttsync.workflows.resolutions import resolution_for

_out = Console()
_err = Console(stderr=True)

WorkflowIdArgument = Annotated[
    str,
    typer.Argument(
        help="Workflow id, or a unique prefix of it (at least 4 characters; see `ttsync workflows list`)."
    ),
]

workflows_app = typer.Typer(
    help="Runs of orchestrations: list, show, retry, restart, resolve.", no_args_is_help=True
)


def run(
    orchestration: Annotated[str, typer.Argument(help="Name of the orchestration to run.")],
    plan: Annotated[bool, typer.Option("--plan", help="Show what would happen; send nothing.")] = False,
    show_sql: Annotated[
        bool,
        typer.Option("--show-sql", help="With --plan: print the SQL a hash_in_warehouse source runs."),
    ] = False,
    allow_large_removal: Annotated[
        bool, typer.Option("--allow-large-removal", help="Let this run remove more than the remove guard.")
    ] = False,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Identifiers per mapping request.")
    ] = 10_000,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run an orchestration now: sync its audience (or preview with --plan)."""
    options = RunOptions(batch_rows=batch_rows, allow_large_removal=allow_large_removal)
    ws = Workspace.discover(workspace)
    reporter = RichReporter(enabled=not as_json and _err.is_terminal)
    with open_store(workspace) as store, reporter, handle_errors():
        audience_run = build_run(ws, store, orchestration, options=options, reporter=reporter)
        if plan:
            preview = preview_run(audience_run)
        else:
            outcome = start_run(audience_run)
    if plan:
        if not show_sql:
            preview.pop("warehouse_sql", None)
        _show_preview(preview, as_json)
        return
    _prune_after_run(ws, workspace)
    _show_outcome(outcome, as_json)


def _prune_after_run(ws: Workspace, workspace: Path | None) -> None:
    """Apply the workspace's retention setting to old run folders; a failure here never fails the run."""
    from ttsync.app.retention import prune_runs

    try:
        with open_store(workspace) as store:
            prune_runs(ws.state_dir, store)
    except Exception as exc:
        _err.print(f"[yellow]warning:[/yellow] could not prune old run folders: {exc}", highlight=False)


def _show_preview(preview: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(preview)
        return
    if "totals" in preview:
        _show_event_preview(preview)
        return
    p = preview["plan"]
    table = Table(
        title=f"Plan for {preview['orchestration']} → {preview['audience_name']}", show_header=False
    )
    table.add_row("rows read", f"{preview['rows_read']:,}")
    table.add_row("people with an identifier", f"{p['current_people']:,}")
    table.add_row("identifiers now", f"{p['current_ids']:,}")
    table.add_row("identifiers in TikTok (snapshot)", f"{p['previous_ids']:,}")
    table.add_row("[green]to add[/green]", f"{p['add_ids']:,}")
    table.add_row("[red]to remove[/red]", f"{p['remove_ids']:,} ({p['remove_share']:.1%})")
    table.add_row("audience", _audience_text(preview["audience"]))
    for reason, count in preview["rejected_by_reason"].items():
        table.add_row(f"rejected: {reason}", f"{count:,}")
    _out.print(table)
    _show_match_report(preview["match_report"])
    if "warehouse_sql" in preview:
        sql = preview["warehouse_sql"]
        _out.print(
            "SQL run in the warehouse (hash_in_warehouse):"
            if sql
            else "This source does not hash in the warehouse (hash_in_warehouse is off, docs/scale.md): its "
            "query runs as written.",
            highlight=False,
        )
        if sql:
            _out.print(sql, highlight=False, markup=False)
    for warning in preview["warnings"]:
        _err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    _out.print("Nothing was sent. Run without --plan to sync.", highlight=False)


def _audience_text(audience: dict[str, Any]) -> str:
    """The plan's audience line: only say "new" or "exists" when TikTok answered."""
    audience_id = audience.get("audience_id")
    if audience.get("exists") is None:
        why = audience.get("check_error") or "no answer"
        return f"{audience_id or 'unknown'} (could not check TikTok: {why})"
    if audience_id and audience.get("exists") is False:
        return f"{audience_id} is gone from TikTok: a new one is created on the next run"
    return str(audience_id or "new (created on first run)")


def _show_event_preview(preview: dict[str, Any]) -> None:
    totals = preview["totals"]
    table = Table(
        title=f"Plan for {preview['orchestration']} → event set {preview['event_set_id']}", show_header=False
    )
    table.add_row("warehouse rows", f"{totals['rows']:,}")
    table.add_row("events", f"{totals['events']:,}")
    table.add_row("[green]to send[/green]", f"{totals['planned']:,}")
    table.add_row("already accepted by TikTok (ledger)", f"{totals['duplicate_skipped']:,}")
    for reason, count in totals["rejected"].items():
        table.add_row(f"rejected: {reason}", f"{count:,}")
    _out.print(table)
    if preview.get("match_report"):
        _show_match_report(preview["match_report"])
    if "warehouse_sql" in preview:
        sql = preview["warehouse_sql"]
        _out.print(
            "SQL run in the warehouse (hash_in_warehouse):"
            if sql
            else "This source does not hash in the warehouse (hash_in_warehouse is off, docs/scale.md): its "
            "query runs as written.",
            highlight=False,
        )
        if sql:
            _out.print(sql, highlight=False, markup=False)
    for warning in preview["warnings"]:
        _err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    _out.print("Nothing was sent. Run without --plan to send.", highlight=False)


def _show_match_report(report: dict[str, Any]) -> None:
    types = report.get("types") or report.get("by_type") or {}
    if not isinstance(types, dict) or not types:
        return
    table = Table("identifier", "present", "valid", "rejected", "duplicates", title="Match quality")
    for name, row in types.items():
        if not isinstance(row, dict):
            continue
        rejected = row.get("rejected", {})
        rejected_total = sum(rejected.values()) if isinstance(rejected, dict) else rejected
        table.add_row(
            str(name),
            f"{row.get('present', 0):,}",
            f"{row.get('valid', 0):,}",
            f"{rejected_total:,}",
            f"{row.get('duplicates', 0):,}",
        )
    _out.print(table)


def _show_outcome(outcome: RunOutcome, as_json: bool) -> None:
    # A failed workflow exits 1 (its resolution says what to do), or 3 when TikTok was down or rate-limited.
    code = for_failed_workflow((outcome.workflow.error or {}).get("resolution"))
    if as_json:
        print_json(outcome.to_dict() | ({} if outcome.ok else {"exit_code": code}))
        if not outcome.ok:
            raise typer.Exit(code)
        return
    _show_workflow(outcome.workflow)
    if not outcome.ok:
        raise typer.Exit(code)


def _show_workflow(workflow: WorkflowRecord) -> None:
    color = {"succeeded": "green", "failed": "red"}.get(workflow.state, "yellow")
    # Warnings print in every mode (terminal, piped, redirected): they are part of the outcome, not progress.
    warnings = workflow_warnings(workflow)
    _out.print(
        f"workflow [bold]{workflow.id}[/bold] for {workflow.orchestration}: [{color}]{workflow.state}[/{color}]"
    )
    table = Table("task", "state", "attempts", "seconds", "counts")
    for task in workflow.tasks:
        seconds = (
            f"{(task.finished_at - task.started_at).total_seconds():.1f}"
            if task.started_at and task.finished_at
            else ""
        )
        counts = ", ".join(
            f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
            for k, v in task.counts.items()
            if k != "match_report" and not isinstance(v, dict | list)
        )
        tcolor = {"succeeded": "green", "failed": "red"}.get(task.state, "dim")
        table.add_row(task.name, f"[{tcolor}]{task.state}[/{tcolor}]", str(task.attempts), seconds, counts)
    _out.print(table)
    for warning in warnings:
        _out.print(
            f"[yellow]warning:[/yellow] {warning['message']} (task {warning['task']})", highlight=False
        )
    if warnings and workflow.state == "succeeded_with_warnings":
        serious = next((w for w in warnings if w.get("serious") and w.get("resolution")), None)
        if serious is not None:
            resolution = resolution_for(serious["resolution"])
            for i, step in enumerate(resolution.steps, 1):
                _out.print(f"  {i}. {step.replace('ID', workflow.id)}", highlight=False)
    if workflow.state == "interrupted":
        _out.print(
            f"Its process died while it ran (no live lease). Continue with: ttsync workflows retry {workflow.id} "
            f"(or run {workflow.orchestration} again, which supersedes it)",
            highlight=False,
        )
    if workflow.state == "superseded":
        by = (workflow.checkpoint or {}).get("superseded_by")
        _out.print(
            f"A newer run of {workflow.orchestration}{f' ({by})' if by else ''} replaced it: it can no longer "
            "be retried; whatever it sent was reconciled by the newer run.",
            highlight=False,
        )
    if workflow.state == "failed":
        error = workflow.error or {}
        resolution = resolution_for(error.get("resolution"))
        _out.print(
            f"[red bold]{resolution.title}[/red bold] (task {error.get('task')}): {error.get('message')}"
        )
        _out.print(f"What happened: {resolution.what}", highlight=False)
        _out.print(f"Why: {resolution.why}", highlight=False)
        for i, step in enumerate(resolution.steps, 1):
            _out.print(f"  {i}. {step.replace('ID', workflow.id)}", highlight=False)
        _out.print(
            f"Continue with: ttsync workflows {resolution.action.value} {workflow.id}", highlight=False
        )


@workflows_app.command("list")
def workflows_list(
    orchestration: Annotated[str | None, typer.Option("--orchestration", "-o", help="Only this one.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many workflows.")] = 20,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent workflows, newest first."""
    with open_store(workspace) as store, handle_errors():
        items = queries.list_workflows(store, orchestration=orchestration, limit=limit)
    if as_json:
        print_json([w.model_dump(mode="json") for w in items])
        return
    rows = [
        [
            w.id,
            w.orchestration,
            w.state,
            f"{w.created_at:%Y-%m-%d %H:%M:%S}",
            (w.error or {}).get("resolution", "")
            if w.state == "failed"
            else ("see warnings" if w.state == "succeeded_with_warnings" else ""),
        ]
        for w in items
    ]
    # Plain aligned columns, never truncated (a table shrinks to the terminal and would cut the ids, which
    # people copy into `workflows show/retry`); the lines may wrap on a narrow terminal instead.
    typer.echo(_columns(["id", "orchestration", "state", "created", "resolution"], rows))


def _columns(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


@workflows_app.command("show")
def workflows_show(
    workflow_id: WorkflowIdArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """One workflow with its tasks, timings, counts and, when it failed, the resolution."""
    with open_store(workspace) as store, handle_errors():
        workflow = queries.show_workflow(store, workflow_id)
    if as_json:
        print_json(RunOutcome(workflow, ok=workflow.state != "failed").to_dict())
    else:
        _show_workflow(workflow)


def _continue(workflow_id: str, action: str, task: str | None, workspace: Path | None, as_json: bool) -> None:
    ws = Workspace.discover(workspace)
    reporter = RichReporter(enabled=not as_json and _err.is_terminal)
    with open_store(workspace) as store, reporter, handle_errors():
        workflow = queries.find_workflow(store, workflow_id)
        audience_run = build_continue_run(ws, store, workflow.orchestration, reporter=reporter)
        outcome = continue_run(audience_run, workflow.id, action, task)
    _show_outcome(outcome, as_json)


@workflows_app.command("retry")
def workflows_retry(
    workflow_id: WorkflowIdArgument,
    task: Annotated[
        str | None, typer.Option("--task", help="Task to run again (default: the failed one).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the failed task again and continue; what TikTok confirmed is not sent again."""
    _continue(workflow_id, "retry", task, workspace, as_json)


@workflows_app.command("restart")
def workflows_restart(
    workflow_id: WorkflowIdArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the workflow again from its first task."""
    _continue(workflow_id, "restart", None, workspace, as_json)


@workflows_app.command("resolve")
def workflows_resolve(
    workflow_id: WorkflowIdArgument,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-check the (fixed) configuration, then continue from the last checkpoint."""
    _continue(workflow_id, "resolve", None, workspace, as_json)


def notifications(
    unread: Annotated[bool, typer.Option("--unread", help="Only unread notifications.")] = False,
    mark_read: Annotated[bool, typer.Option("--mark-read", help="Mark the listed ones read.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Alerts raised by workflows, newest first."""
    with open_store(workspace) as store, handle_errors():
        items = queries.list_notifications(store, unread_only=unread, mark_read=mark_read)
    if as_json:
        print_json([n.model_dump(mode="json") for n in items])
        return
    table = Table("id", "when", "severity", "title", "workflow")
    for n in items:
        table.add_row(
            str(n.id), f"{n.created_at:%Y-%m-%d %H:%M:%S}", n.severity, n.title, n.workflow_id or ""
        )
    _out.print(table)


def quickstart(
    rows: Annotated[int, typer.Option("--rows", min=100, help="Customers in the sample warehouse.")] = 20_000,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", "--workspace", "-w", help="Workspace folder to create (default: a new temporary folder)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the main job on embedded defaults: sample warehouse + emulator, sync, change, sync again."""
    from ttsync.app.quickstart import ORCHESTRATION, run_quickstart

    reporter = RichReporter(enabled=not as_json)
    with reporter, handle_errors():
        result = run_quickstart(directory=directory, rows=rows, reporter=reporter)
    if as_json:
        print_json(result.to_dict())
        if not result.ok:
            raise typer.Exit(1)
        return
    table = Table("sync", "state", "people", "ids added", "ids removed", "ids in TikTok", title="Audience")
    for i, outcome in enumerate(result.runs, 1):
        counts = outcome.workflow.counts
        plan, upload = counts.get("plan", {}), counts.get("upload", {})
        members = result.emulator_members[i - 1] if i - 1 < len(result.emulator_members) else None
        table.add_row(
            "first" if i == 1 else "after change",
            outcome.workflow.state,
            f"{plan.get('current_people', 0):,}",
            f"{upload.get('added_ids', 0):,}",
            f"{upload.get('removed_ids', 0):,}",
            f"{members:,}" if members is not None else "?",
        )
    _out.print(table)
    if result.runs:
        audience = result.runs[0].workflow.counts.get("verify_audience", {}).get("audience_id", "")
        _out.print(f"Audience {audience} 'High value customers' on the sandbox advertiser.", highlight=False)
    for outcome in [*result.runs, *([result.events] if result.events else [])]:
        if not outcome.ok:
            _show_workflow(outcome.workflow)
            raise typer.Exit(1)
    if result.events is not None:
        deliver = result.events.workflow.counts.get("deliver", {})
        rejected = deliver.get("rejected", {})
        _out.print(
            f"Offline events: {deliver.get('sent', 0):,} CompletePayment events sent once each "
            f"({result.events_received:,} received by the emulator); "
            f"{deliver.get('rejected_total', 0):,} rejected" + (f" {rejected}" if rejected else ""),
            highlight=False,
        )
    ws = shlex.quote(str(result.workspace))
    _out.print(f"[green]Done.[/green] The workspace is {ws}. Look next:", highlight=False)
    # Plain lines, never wrapped by the console, so each command can be copied and run as printed.
    typer.echo(f"  ttsync workflows list -w {ws}")
    typer.echo(f"  ttsync workflows show {result.runs[-1].workflow.id} -w {ws}")
    typer.echo(f"  ttsync orchestrations show {ORCHESTRATION} -w {ws}")
    typer.echo(f"  ttsync campaigns plan spring-offer -w {ws}  # the sample campaign (docs/campaigns.md)")
    typer.echo(
        f"  cat {shlex.quote(str(result.workspace / 'ttsync.yaml'))}  # the configuration (docs/configuration.md)"
    )


runs_app = typer.Typer(
    help="Run folders (state/runs/): prune the ones of finished workflows.", no_args_is_help=True
)


@runs_app.command("prune")
def runs_prune(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=0,
            metavar="DAYS",
            help="Prune folders of workflows finished more than DAYS ago (default: the workspace's "
            "retention.run_folders_days, 30 unless set; not applied when only --keep is given).",
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=0, metavar="N", help="Always keep the N newest finished runs' folders."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be pruned; delete nothing.")
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete run folders of finished workflows. Never a retryable workflow's folder, never a snapshot."""
    from ttsync.app.retention import prune_runs

    ws = Workspace.discover(workspace)
    with open_store(workspace) as store, handle_errors():
        result = prune_runs(ws.state_dir, store, older_than_days=older_than, keep=keep, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
        return
    totals = result.to_dict()
    for folder in result.folders:
        if folder.action != "kept":
            typer.echo(
                f"{folder.action}  {folder.workflow_id}  {folder.bytes / 1e6:.1f} MB  ({folder.reason})"
            )
    verb = "would free" if dry_run else "freed"
    typer.echo(
        f"{totals['pruned']} run folder(s) {'to prune' if dry_run else 'pruned'}, {totals['kept']} kept; "
        f"{verb} {totals['bytes_freed'] / 1e6:.1f} MB"
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(runs_app, name="runs")
    app.command("quickstart")(quickstart)
    app.command("run")(run)
    app.add_typer(workflows_app, name="workflows")
    app.command("notifications")(notifications)
