"""The engine's dry run (`ttsync run --plan`): the declared tasks run in order with `ctx.dry_run` set, checkpoints
and counts pass between them in memory, tasks that only send are skipped and the store is not written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ttsync.store import Store, repos
from ttsync.store.crypto import SecretBox, generate_key
from ttsync.store.db import sqlite_url
from ttsync.workflows.engine import TaskContext, TaskSpec, dry_run_workflow


def test_dry_run_passes_results_in_memory_and_skips_sending_tasks(tmp_path: Path) -> None:
    seen: list[str] = []

    async def plan(ctx: TaskContext) -> dict[str, Any]:
        seen.append(f"plan dry_run={ctx.dry_run}")
        ctx.save_checkpoint({"plan_id": "p1"})
        ctx.save_counts({"ignored": True})  # a dry run stores nothing
        ctx.warn("near the guard", key="remove_guard")
        return {"add_ids": 3}

    async def report(ctx: TaskContext) -> dict[str, Any]:
        seen.append("report")
        return {"seen_plan": ctx.checkpoint_of("plan")["plan_id"], "adds": ctx.output_of("plan")["add_ids"]}

    async def upload(ctx: TaskContext) -> dict[str, Any]:
        raise AssertionError("a task that only sends never runs in a dry run")

    specs = [TaskSpec("plan", plan), TaskSpec("upload", upload, in_dry_run=False), TaskSpec("report", report)]
    with Store.open(sqlite_url(tmp_path / "ttsync.db"), SecretBox(generate_key())) as store:
        results = asyncio.run(dry_run_workflow(store, "plan-1", specs))
        assert repos.list_workflows(store) == []

    assert seen == ["plan dry_run=True", "report"]
    assert list(results) == ["plan", "report"]
    assert results["plan"].checkpoint == {"plan_id": "p1"}
    assert results["plan"].warnings == [
        {"message": "near the guard", "serious": False, "resolution": None, "key": "remove_guard"}
    ]
    assert results["report"].counts == {"seen_plan": "p1", "adds": 3}


def test_a_real_run_never_stores_a_warning_key(tmp_path: Path) -> None:
    with Store.open(sqlite_url(tmp_path / "ttsync.db"), SecretBox(generate_key())) as store:
        ctx = TaskContext(store, "w1", "plan", {})
        ctx.warn("near the guard", key="remove_guard")
    assert ctx.warnings == [{"message": "near the guard", "serious": False, "resolution": None}]
