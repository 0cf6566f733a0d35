"""Who may run a workflow now: leases, superseding and interrupted workflows (see `ttsync.store.leases`).

- A run or a retry first takes the orchestration's lease (the audience's lease follows once the audience is
  known); a live holder makes it refuse with `WorkflowRunningError`, naming the running workflow.
- A new run supersedes every unfinished workflow of its orchestration: they become `superseded` and can no
  longer be continued (`WorkflowSupersededError`). What they may have sent is in their in-flight records,
  which the new run's plan reconciles.
- A `running` workflow whose lease holder is dead or silent is shown as `interrupted`, never "running"
  forever; a retry (or the next run) takes its lease over.
"""

from __future__ import annotations

import sqlalchemy as sa

from ttsync.errors import WorkflowRunningError, WorkflowSupersededError
from ttsync.store import leases, schema
from ttsync.store.db import Store
from ttsync.store.records import WorkflowRecord

UNFINISHED_STATES = ("pending", "running", "waiting", "blocked", "failed", "interrupted")


def hold(keeper: leases.LeaseKeeper, resource: str) -> None:
    """Take `resource`'s lease for the keeper's workflow, or refuse naming the workflow that runs on it."""
    try:
        keeper.acquire(resource)
    except leases.LeaseHeldError as held:
        running = held.lease.workflow_id
        raise WorkflowRunningError(
            f"refused: {held}. Only one workflow may run at a time; wait for it to finish "
            f"(`ttsync workflows show {running}`), then run again"
        ) from None


def check_continuable(workflow: WorkflowRecord) -> None:
    """Refuse to continue a superseded workflow."""
    if workflow.state != "superseded":
        return
    newer = (workflow.checkpoint or {}).get("superseded_by")
    by = f" by workflow {newer}" if newer else ""
    raise WorkflowSupersededError(
        f"refused: workflow {workflow.id} was superseded{by}, a newer run of {workflow.orchestration}; "
        "its plan is stale and it can no longer be retried, resolved or restarted. Run "
        f"`ttsync run {workflow.orchestration}` instead: it reconciles whatever this workflow sent"
    )


def supersede_unfinished(store: Store, orchestration: str, new_workflow_id: str) -> list[str]:
    """Mark every unfinished workflow of `orchestration` (but the new one) superseded; return their ids.

    Call only while holding the orchestration's lease: then none of them can be running."""
    table = schema.workflows
    with store.engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.select(table.c.id).where(
                    table.c.orchestration == orchestration,
                    table.c.state.in_(UNFINISHED_STATES),
                    table.c.id != new_workflow_id,
                )
            ).scalars()
        )
        for wid in ids:
            conn.execute(
                sa.update(table)
                .where(table.c.id == wid)
                .values(state="superseded", checkpoint={"superseded_by": new_workflow_id})
            )
    return ids


def reap_interrupted(store: Store, *, timeout: float | None = None) -> list[str]:
    """Mark `running` workflows whose process is gone (no live lease) `interrupted`; return their ids."""
    limit = leases.lease_timeout() if timeout is None else timeout
    table = schema.workflows
    with store.read() as conn:
        running = list(conn.execute(sa.select(table.c.id).where(table.c.state == "running")).scalars())
    reaped: list[str] = []
    for wid in running:
        held = leases.leases_of(store, wid)
        if any(leases.is_live(lease, timeout=limit) for lease in held):
            continue
        # Only if it still reads `running`: its process may have finished (state stored, then lease released)
        # between the read above and the lease check, and a finished workflow must keep its state.
        with store.engine.begin() as conn:
            changed = conn.execute(
                sa.update(table)
                .where(table.c.id == wid, table.c.state == "running")
                .values(state="interrupted")
            ).rowcount
            if not changed:
                continue
            tasks = schema.tasks
            conn.execute(
                sa.update(tasks)
                .where(tasks.c.workflow_id == wid, tasks.c.state == "running")
                .values(state="interrupted")
            )
        reaped.append(wid)
    return reaped
