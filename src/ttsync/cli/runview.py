"""How the run commands print: a plan (`run --plan`), a workflow with its tasks and resolution, columns."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ttsync.app.queries import WorkflowRecord
from ttsync.app.runs import RunOutcome
from ttsync.cli._common import print_json
from ttsync.exitcodes import for_failed_workflow
from ttsync.workflows.engine import workflow_warnings
from ttsync.workflows.resolutions import resolution_for

_out = Console()
_err = Console(stderr=True)


def show_preview(preview: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(preview)
        return
    if "totals" in preview:
        _show_event_preview(preview)
        return
    p = preview["plan"]
    rows = [
        ("rows read", f"{preview['rows_read']:,}"),
        ("people with an identifier", f"{p['current_people']:,}"),
        ("identifiers now", f"{p['current_ids']:,}"),
        ("identifiers in TikTok (snapshot)", f"{p['previous_ids']:,}"),
        ("[green]to add[/green]", f"{p['add_ids']:,}"),
        ("[red]to remove[/red]", f"{p['remove_ids']:,} ({p['remove_share']:.1%})"),
        # Forget requests and suppression lists (app.privacy): left out, and removed before the plan.
        ("suppressed", f"{p.get('suppressed_ids', 0):,}"),
        ("[red]removed for privacy first[/red]", f"{p.get('privacy_removed_ids', 0):,}"),
        ("audience", _audience_text(preview["audience"])),
    ]
    title = f"Plan for {preview['orchestration']} → {preview['audience_name']}"
    _print_plan(title, rows, preview["rejected_by_reason"])
    _show_match_report(preview["match_report"])
    _show_preview_tail(preview, "sync")


def _print_plan(title: str, rows: list[tuple[str, str]], rejected: dict[str, int]) -> None:
    """A plan as a two-column table: its rows, then one row per reject reason."""
    table = Table(title=title, show_header=False)
    for label, value in [
        *rows,
        *((f"rejected: {reason}", f"{count:,}") for reason, count in rejected.items()),
    ]:
        table.add_row(label, value)
    _out.print(table)


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
    rows = [
        ("warehouse rows", f"{totals['rows']:,}"),
        ("events", f"{totals['events']:,}"),
        ("[green]to send[/green]", f"{totals['planned']:,}"),
        ("already accepted by TikTok (ledger)", f"{totals['duplicate_skipped']:,}"),
    ]
    title = f"Plan for {preview['orchestration']} → event set {preview['event_set_id']}"
    _print_plan(title, rows, totals["rejected"])
    if preview.get("match_report"):
        _show_match_report(preview["match_report"])
    _show_preview_tail(preview, "send")


def _show_preview_tail(preview: dict[str, Any], verb: str) -> None:
    """What both previews end with: the warehouse SQL (with --show-sql), the warnings, "nothing was sent"."""
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
    _out.print(f"Nothing was sent. Run without --plan to {verb}.", highlight=False)


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


def show_outcome(outcome: RunOutcome, as_json: bool) -> None:
    # A failed workflow exits 1 (its resolution says what to do), or 3 when TikTok was down or rate-limited.
    code = for_failed_workflow((outcome.workflow.error or {}).get("resolution"))
    if as_json:
        print_json(outcome.to_dict() | ({} if outcome.ok else {"exit_code": code}))
        if not outcome.ok:
            raise typer.Exit(code)
        return
    show_workflow(outcome.workflow)
    if not outcome.ok:
        raise typer.Exit(code)


def show_workflow(workflow: WorkflowRecord) -> None:
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


def columns(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines)
