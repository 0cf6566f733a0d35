"""Forget requests and suppression lists in every audience run (docs/campaigns.md#suppression-and-forget-requests):
people that no audience of the workspace may hold, for orchestrations and campaigns alike.

The list itself (`STATE/privacy/`) is `app.privacy_list`. Every audience run applies it in two places
(`with_privacy` wraps the run's own tasks, the way write-back adds its task):

- after `prepare`: the listed identifiers, and every identifier of a listed key, leave the prepared files, so
  no run sends them again (`app.privacy_prepared`); the rows removed are recorded in
  `prepared/excluded.parquet` (row key, id schema, reason) for write-back; counted as `suppressed_ids`;
- before `plan`: listed identifiers still in the audience's snapshot are removed from TikTok at once and
  from the snapshot (`app.privacy_remove`), so they bypass the remove guard and a campaign's learning-phase
  guard (a privacy request is not a change to pace); counted as `privacy_removed_ids`, with an audit entry.

A preview (`ttsync run --plan`, `ttsync campaigns plan`) runs the same wrapped tasks as a dry run: nothing is
sent and the workspace's files are untouched, but the plan sees the prepared files and the snapshot exactly
as the run would, so it never promises to add a listed person.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ttsync.app.audit import record
from ttsync.app.privacy_prepared import filter_prepared, hash_files, hash_suppression_segments, read_hashes
from ttsync.app.privacy_remove import delete_held, held_in_snapshot, write_without
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.destinations.tiktok.pipelines.base import OrchestrationRun
from ttsync.workflows.engine import TaskContext, TaskSpec

SUPPRESSED = "suppressed_ids"  # plan count: listed identifiers of the query this run leaves out
REMOVED = "privacy_removed_ids"  # plan count: listed identifiers removed from the audience before the plan


def with_privacy(run: OrchestrationRun, specs: list[TaskSpec]) -> list[TaskSpec]:
    """The run's tasks with the workspace's list applied after `prepare` and before `plan` (audience runs
    only; nothing changes while the list is empty)."""
    if not isinstance(run, AudienceRun):
        return specs
    out = []
    for spec in specs:
        if spec.name == "prepare":
            out.append(TaskSpec(spec.name, _after(spec, run), spec.in_dry_run))
        elif spec.name == "plan":
            out.append(TaskSpec(spec.name, _before(spec, run), spec.in_dry_run))
        else:
            out.append(spec)
    return out


def _after(spec: TaskSpec, run: AudienceRun) -> Any:
    async def prepare(ctx: TaskContext) -> dict[str, Any]:
        counts = dict(await spec.run(ctx) or {})
        run_dir = run.run_dir(ctx.workflow_id)
        suppressed = await asyncio.to_thread(hash_suppression_segments, ctx.store, run.root, run_dir)
        if suppressed:
            counts["suppression_segment_ids"] = suppressed
        removed = filter_prepared(run.state_dir, run_dir / "prepared", dry_run=ctx.dry_run)
        if removed:
            counts["privacy_excluded_ids"] = removed
        if not (run_dir / "prepared" / "ids.parquet").is_file() and hash_files(run.state_dir, run_dir):
            ctx.warn(
                "forget requests and suppression lists were not applied: this run's identifiers are prepared "
                "in Spark, outside ttsync; run this audience from a DuckDB or SQL source to apply them",
                serious=True,
            )
        return counts

    return prepare


def _before(spec: TaskSpec, run: AudienceRun) -> Any:
    async def plan(ctx: TaskContext) -> dict[str, Any]:
        removed = _preview_removal(run, ctx) if ctx.dry_run else await remove_listed(run, ctx)
        counts = dict(await spec.run(ctx) or {})
        suppressed = int(ctx.output_of("prepare").get("privacy_excluded_ids") or 0)
        if suppressed:
            counts[SUPPRESSED] = suppressed
        if removed:
            counts[REMOVED] = removed
        return counts

    return plan


def _held(run: AudienceRun, ctx: TaskContext) -> tuple[str, str] | None:
    """(audience id, listed-identifiers SQL) when the run's audience may hold listed identifiers."""
    run_dir = run.run_dir(ctx.workflow_id)
    files = hash_files(run.state_dir, run_dir)
    audience_id = ctx.output_of("verify_audience").get("audience_id")
    if not files or not audience_id or not (run_dir / "prepared" / "ids.parquet").is_file():
        return None  # nothing listed, no audience yet, or prepared in Spark (the plan would add them back)
    if not run.snapshot_file(str(audience_id)).is_file():
        return None
    return str(audience_id), read_hashes(files)


def _preview_removal(run: AudienceRun, ctx: TaskContext) -> int:
    """A dry run's `remove_listed`: count what the run would remove, and let the plan see the snapshot
    without it (a copy in the dry run's folder, which `snapshot_file` reads during the dry run)."""
    held = _held(run, ctx)
    if held is None or run.dry_run_dir is None:
        return 0
    audience_id, hashes_sql = held
    snapshot = run.snapshot_file(audience_id)
    found = held_in_snapshot(snapshot, hashes_sql)
    if found:
        write_without(snapshot, hashes_sql, run.dry_run_dir / "snapshots" / f"{audience_id}.parquet")
    return len(found)


async def remove_listed(run: AudienceRun, ctx: TaskContext) -> int:
    """Remove the listed identifiers the audience still holds (its snapshot says so) from TikTok and from the
    snapshot, before the plan: no guard applies to a privacy request. Returns how many were removed."""
    held = _held(run, ctx)
    if held is None:
        return 0
    audience_id, hashes_sql = held
    found = await delete_held(run, audience_id, hashes_sql)
    if not found:
        return 0
    record(ctx.store, "ttsync", "privacy.removed", f"audience:{audience_id}",
           {"workflow_id": ctx.workflow_id, "orchestration": run.orchestration.name, "removed": len(found)})  # fmt: skip
    return len(found)
