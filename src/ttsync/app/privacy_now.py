"""Forget requests applied at once (`ttsync forget --now`) and the report of where forgotten people are left
(`ttsync forget --report`), docs/campaigns.md#suppression-and-forget-requests.

A module of its own, beside `app/privacy.py`: it builds audience runs (`app/runs.py`), which import
`app/privacy.py` to apply the list in every run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import duckdb

from ttsync.app.audit import entries, record
from ttsync.app.privacy import FORGET, delete_held, held_in_snapshot, privacy_dir
from ttsync.app.runs import build_continue_run
from ttsync.app.workspace.layout import Workspace
from ttsync.destinations.tiktok.client.errors import TikTokError
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.errors import WorkspaceError
from ttsync.identity.digests import HEX_SQL
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.sync.snapshot import snapshot_path

NOW_ACTION = "privacy.forget_now"
PREFIX = 12  # hex digits of a hash shown in reports (enough to tell them apart, not to look one up)


def _forgotten_sql(workspace: Workspace) -> str | None:
    """Every identifier of every forget request (suppression lists wait for each run), as a DuckDB relation."""
    path = privacy_dir(workspace.state_dir) / "hashes.parquet"
    if not path.is_file():
        return None
    return f"(SELECT * FROM read_parquet({sql_literal(path)}) WHERE origin = {sql_literal(FORGET)})"


def _audience_runs(workspace: Workspace, store: Store) -> list[dict[str, Any]]:
    """Every TikTok audience the workspace manages, with its run (None and a reason when it cannot be built)."""
    out = []
    for state in repos.list_audience_states(store):
        item: dict[str, Any] = {"audience_id": state.audience_id, "orchestration": state.orchestration,
                                "destination": state.destination, "run": None, "reason": None}  # fmt: skip
        try:
            # A stored orchestration's run, or a campaign delivery's (derived, never stored).
            run = build_continue_run(workspace, store, state.orchestration)
        except WorkspaceError as exc:
            item["reason"] = f"orchestration cannot be loaded: {exc}"
        else:
            if not isinstance(run, AudienceRun) or run.destination.name != state.destination:
                item["reason"] = "the orchestration no longer writes to this audience"
            else:
                item["run"] = run
        out.append(item)
    return out


def forget_now(
    workspace: Workspace,
    store: Store,
    request: str,
    *,
    actor: str = "cli",
) -> dict[str, Any]:
    """Remove every forgotten identifier from every audience of the workspace now: a segment-API audience gets
    a `segment/mapping/` delete of those its snapshot holds, then the snapshot drops them (status `removed`,
    or `failed` with the reason when TikTok refuses); a customer-file audience (no per-identifier delete) is
    reported as `pending_full_upload`. An audit entry
    records the hashes and the audiences touched. Returns the audiences with what was removed (hashes only)."""
    hashes_sql = _forgotten_sql(workspace)
    audiences: list[dict[str, Any]] = []
    for item in _audience_runs(workspace, store) if hashes_sql else []:
        run: AudienceRun | None = item.pop("run")
        entry = item | {"removed": [], "status": "not_held"}
        if run is None:
            entry["status"] = "skipped"
        elif run.customer_file:
            held = held_in_snapshot(run.snapshot_file(item["audience_id"]), str(hashes_sql))
            if held:
                entry |= {"status": "pending_full_upload", "held": len(held),
                          "reason": "customer-file audiences have no per-identifier delete: ttsync removes them "
                          "at the audience's next full upload (`mode: replace`)"}  # fmt: skip
        else:
            try:
                found = asyncio.run(delete_held(run, item["audience_id"], str(hashes_sql)))
            except TikTokError as exc:  # the other audiences are still cleared; this one keeps its snapshot
                entry |= {"status": "failed", "reason": f"TikTok refused the delete: {exc.message}; the next "
                          "run of this audience (or `ttsync forget --now` again) retries"}  # fmt: skip
                found = []
            if found:
                entry |= {"status": "removed", "removed": [f"{schema}:{digest}" for schema, digest in found]}
        audiences.append(entry)
    record(store, actor, NOW_ACTION, f"request:{request}",
           {"hashes": sorted({h for a in audiences for h in a["removed"]}),
            "audiences": [{k: a[k] for k in ("audience_id", "orchestration", "status", "removed")}
                          for a in audiences]})  # fmt: skip
    return {"request": request, "audiences": audiences}


def report(workspace: Workspace, store: Store) -> list[dict[str, Any]]:
    """For every forgotten identifier (request, id schema, hash prefix) and every audience of the workspace:
    whether its snapshot still holds it and whether a removal was sent (and accepted by TikTok) for it."""
    hashes_sql = _forgotten_sql(workspace)
    if hashes_sql is None:
        return []
    with duckdb.connect() as con:
        listed = con.execute(
            f"SELECT request, id_schema, {HEX_SQL} AS hash FROM {hashes_sql} GROUP BY ALL ORDER BY 1, 2, 3"
        ).fetchall()
    sent: set[tuple[str, str]] = set()  # (audience id, "SCHEMA:hash") removals TikTok accepted
    for entry in entries(store, action=NOW_ACTION, limit=10_000):
        for audience in entry.details.get("audiences", []):
            if audience.get("status") == "removed":
                sent |= {(str(audience["audience_id"]), str(h)) for h in audience.get("removed", [])}
    rows = []
    for state in repos.list_audience_states(store):
        snapshot = snapshot_path(
            workspace.state_dir, f"{state.destination}__{state.orchestration}", state.audience_id
        )
        held = set(held_in_snapshot(snapshot, hashes_sql))
        for request, schema, digest in listed:
            pair = (str(schema), str(digest))
            rows.append({
                "request": str(request), "id_schema": pair[0], "hash_prefix": pair[1][:PREFIX],
                "audience_id": state.audience_id, "orchestration": state.orchestration,
                "snapshot": snapshot.is_file(), "held": pair in held,
                "removal_sent": (state.audience_id, f"{pair[0]}:{pair[1]}") in sent,
            })  # fmt: skip
    return rows
