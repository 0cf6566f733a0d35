"""Forget requests applied at once (`ttsync forget --now`) and the report of where forgotten people are left
(`ttsync forget --report`), docs/campaigns.md#suppression-and-forget-requests.

A module of its own, beside `app.privacy`: it builds audience runs (`app.runs`), which import `app.privacy` to
apply the list in every run.

`forget --now` changes audiences the way a sync does, so it takes the same leases, one audience at a time:
the orchestration's (`orchestration:NAME`, a campaign delivery's derived name included) and the TikTok
audience's. While a sync holds them it waits up to `wait_seconds`, then leaves that audience `busy` (the
request is recorded: that sync's next run removes them anyway, or `forget --now` again once it finished).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import duckdb

from ttsync.app.audit import entries, record
from ttsync.app.privacy_list import FORGET, append_hashes, hashes_file, keys_file
from ttsync.app.privacy_remove import delete_held, held_in_snapshot
from ttsync.app.runs import build_continue_run
from ttsync.app.workspace.layout import Workspace
from ttsync.destinations.tiktok.client.errors import TikTokError
from ttsync.destinations.tiktok.pipelines.audience import AudienceRun
from ttsync.errors import ResolvableError, WorkspaceError
from ttsync.identity.digests import HEX_SQL
from ttsync.sqltext import sql_literal
from ttsync.store import repos
from ttsync.store.db import Store
from ttsync.store.leases import (
    FORGET_HOLDER_PREFIX,
    LeaseHeldError,
    LeaseKeeper,
    audience_resource,
    lease_timeout,
    orchestration_resource,
)
from ttsync.sync.snapshot import snapshot_path

NOW_ACTION = "privacy.forget_now"
PREFIX = 12  # hex digits of a hash shown in reports (enough to tell them apart, not to look one up)
DEFAULT_WAIT_SECONDS = 30.0  # how long `forget --now` waits for a running sync of an audience
_LEASE_POLL_SECONDS = 0.5


def _forgotten_sql(workspace: Workspace) -> str | None:
    """Every identifier of every forget request (suppression lists wait for each run), as a DuckDB relation."""
    path = hashes_file(workspace.state_dir)
    if not path.is_file():
        return None
    return f"(SELECT * FROM read_parquet({sql_literal(path)}) WHERE origin = {sql_literal(FORGET)})"


def resolve_forgotten_keys(state_dir: Path) -> int:
    """Add to the list the identifiers of forgotten warehouse keys, found in the prepared files of the runs
    the workspace keeps (`STATE/runs/*/prepared/ids.parquet`: row keys in stored form and digests), so
    `forget --now` removes them without waiting for a run. A key no kept run has seen is removed by each
    audience's next run (`app.privacy_prepared.filter_prepared`). Returns the identifiers added."""
    keys = keys_file(state_dir)
    prepared = sorted((state_dir / "runs").glob("*/prepared/ids.parquet"))
    if not keys.is_file() or not prepared:
        return 0
    files = f"read_parquet([{', '.join(sql_literal(p) for p in prepared)}], union_by_name = true)"
    listed = hashes_file(state_dir)
    known = (
        f"SELECT id_schema, {HEX_SQL} AS hash FROM read_parquet({sql_literal(listed)}) "
        f"WHERE origin = {sql_literal(FORGET)}"
        if listed.is_file()
        else "SELECT NULL::VARCHAR AS id_schema, NULL::VARCHAR AS hash WHERE false"
    )
    # Two `forget --now` at once may both add an identifier: a duplicate in the list is harmless.
    with duckdb.connect() as con:
        found = con.execute(
            f"SELECT k.request, i.id_schema, i.hash FROM (SELECT DISTINCT row_key, id_schema, {HEX_SQL} "
            f"AS hash FROM {files}) i JOIN (SELECT row_key, min(request) AS request FROM "
            f"read_parquet({sql_literal(keys)}) GROUP BY ALL) k USING (row_key) "
            f"ANTI JOIN ({known}) l ON i.id_schema = l.id_schema AND i.hash = l.hash "
            "GROUP BY ALL ORDER BY 1, 2, 3"
        ).fetchall()
    by_request: dict[str, list[tuple[str, str]]] = {}
    for request, schema, digest in found:
        by_request.setdefault(str(request), []).append((str(schema), str(digest)))
    for request, rows in by_request.items():
        append_hashes(state_dir, rows, FORGET, request)
    return len(found)


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


def _take(keeper: LeaseKeeper, resources: list[str], wait_seconds: float) -> LeaseHeldError | None:
    """Take every lease of `resources`, waiting up to `wait_seconds` for a live holder; the refusal if not."""
    deadline = time.monotonic() + wait_seconds
    for resource in resources:
        while True:
            try:
                keeper.acquire(resource)
                break
            except LeaseHeldError as held:
                if time.monotonic() >= deadline:
                    return held
                time.sleep(_LEASE_POLL_SECONDS)
    return None


def _remove_from(
    run: AudienceRun, store: Store, request: str, audience_id: str, hashes_sql: str, wait_seconds: float
) -> dict[str, Any]:
    """Under the sync's leases, remove the forgotten identifiers one audience holds: what happened to it."""
    resources = [
        orchestration_resource(run.orchestration.name),
        audience_resource(run.primary_advertiser, audience_id),
    ]
    with LeaseKeeper(store, f"{FORGET_HOLDER_PREFIX}{request}", timeout=lease_timeout()) as keeper:
        held = _take(keeper, resources, wait_seconds)
        if held is not None:
            return {"status": "busy", "reason": f"{held}. Nothing was sent to this audience while it syncs: "
                    "its next run removes them, or run `ttsync forget --now` again once it finished"}  # fmt: skip
        try:
            found = asyncio.run(delete_held(run, audience_id, hashes_sql, ready_timeout=wait_seconds))
        except TikTokError as exc:  # the other audiences are still cleared; this one keeps its snapshot
            return {"status": "failed", "reason": f"TikTok refused the removal: {exc.message}; the next run of "
                    "this audience (or `ttsync forget --now` again) retries"}  # fmt: skip
        except ResolvableError as exc:
            # A customer-file audience still processing past the wait, or that would end under 1,000 people.
            return {"status": "failed", "reason": str(exc)}
    if not found:
        return {"status": "not_held"}
    return {"status": "removed", "removed": [f"{schema}:{digest}" for schema, digest in found]}


def forget_now(
    workspace: Workspace,
    store: Store,
    request: str,
    *,
    actor: str = "cli",
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> dict[str, Any]:
    """Remove every forgotten identifier (those of forgotten keys too, as far as kept runs know them) from
    every audience of the workspace now, under each audience's sync leases: the identifiers its snapshot
    holds are removed through the API that fed it (`app.privacy_remove`), then the snapshot drops them.
    Each audience ends `removed`, `not_held`, `busy` (a sync held it past `wait_seconds`), `failed` (TikTok
    refused; the reason says why and what to do) or `skipped` (no run can be built for it). An audit entry
    records the hashes and the audiences touched. Returns the audiences with what was removed (hashes only)."""
    resolve_forgotten_keys(workspace.state_dir)
    hashes_sql = _forgotten_sql(workspace)
    audiences: list[dict[str, Any]] = []
    for item in _audience_runs(workspace, store) if hashes_sql else []:
        run: AudienceRun | None = item.pop("run")
        entry = item | {"removed": [], "status": "skipped"}
        if run is not None:
            entry |= _remove_from(run, store, request, item["audience_id"], str(hashes_sql), wait_seconds)
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
