"""Pruning run folders (`state/runs/WORKFLOW_ID/`): `ttsync runs prune` and the workspace retention setting.

A run folder holds a workflow's intermediate files (hashes, plans, outcomes). Once the workflow finished
for good it is only history, and a big audience leaves hundreds of MB per run. What pruning never touches:

- the folder of a workflow that may still continue (pending, running, failed, interrupted, or any state this
  version does not know): `workflows retry/resolve` reads its files;
- anything outside `state/runs/` — snapshots live in `state/snapshots/`. A snapshot is often a hard link to
  a run's `plan/current_ids.parquet`; removing the run folder removes only that folder's name for the file,
  so the snapshot keeps its data (a test checks this).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ttsync.config.file import Retention
from ttsync.errors import ConfigError, NotFoundError
from ttsync.store import Store, repos

SETTINGS_FILE = "workspace-settings.json"
# Workflows in these states are over: nothing will read their run folder again.
FINISHED_STATES = frozenset({"succeeded", "succeeded_with_warnings", "superseded"})


def save_retention(state_dir: Path, retention: Retention) -> None:
    """Keep the applied `retention` setting in the state folder (read by `runs prune` and `export`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SETTINGS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"retention": retention.model_dump(mode="json")}, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_retention(state_dir: Path) -> Retention:
    """The applied retention setting, or the default (30 days) when none was applied."""
    path = state_dir / SETTINGS_FILE
    if not path.is_file():
        return Retention()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Retention.model_validate(data.get("retention") or {})
    except (ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{path} is damaged ({exc}): run `ttsync apply -f ttsync.yaml` to write it again"
        ) from None


@dataclass(frozen=True)
class RunFolder:
    """One run folder and what pruning decided about it."""

    workflow_id: str
    path: Path
    state: str | None  # the workflow's state; None when the store has no such workflow
    created_at: datetime
    bytes: int
    action: str  # "pruned" (or "would prune" in a dry run) / "kept"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "workflow_id": self.workflow_id,
            "path": str(self.path),
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "bytes": self.bytes,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class PruneResult:
    """Every run folder looked at, and the totals."""

    dry_run: bool
    older_than_days: int | None
    keep: int | None
    folders: list[RunFolder] = field(default_factory=list)

    @property
    def pruned(self) -> list[RunFolder]:
        """Folders removed (or that would be, in a dry run)."""
        return [f for f in self.folders if f.action != "kept"]

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`."""
        return {
            "dry_run": self.dry_run,
            "older_than_days": self.older_than_days,
            "keep": self.keep,
            "pruned": len(self.pruned),
            "kept": len(self.folders) - len(self.pruned),
            "bytes_freed": sum(f.bytes for f in self.pruned),
            "folders": [f.to_dict() for f in self.folders],
        }


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def prune_runs(
    state_dir: Path,
    store: Store,
    *,
    older_than_days: int | None = None,
    keep: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Remove run folders of finished workflows that are older than `older_than_days` and not among the
    `keep` newest finished ones. With neither given, the workspace's retention setting decides (default:
    older than 30 days). With only `keep`, age does not matter."""
    if older_than_days is None and keep is None:
        older_than_days = load_retention(state_dir).run_folders_days
    if older_than_days is not None and older_than_days < 0:
        raise ConfigError("--older-than must be 0 or more days")
    if keep is not None and keep < 0:
        raise ConfigError("--keep must be 0 or more")
    current = now or datetime.now(UTC)
    result = PruneResult(dry_run=dry_run, older_than_days=older_than_days, keep=keep)
    runs = state_dir / "runs"
    if not runs.is_dir():
        return result
    candidates: list[tuple[Path, str | None, datetime]] = []
    for path in sorted(runs.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        try:
            workflow = repos.get_workflow(store, path.name)
            state: str | None = workflow.state
            created = workflow.finished_at or workflow.created_at
        except NotFoundError:  # a folder whose workflow is gone from the store: only its age counts
            state = None
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        candidates.append((path, state, created))
    finished = sorted(
        (c for c in candidates if c[1] is None or c[1] in FINISHED_STATES), key=lambda c: c[2], reverse=True
    )
    newest = {c[0] for c in finished[: keep or 0]}
    cutoff = current - timedelta(days=older_than_days) if older_than_days is not None else None
    for path, state, created in sorted(candidates, key=lambda c: c[2]):
        if state is not None and state not in FINISHED_STATES:
            action, reason = "kept", f"workflow is {state}: it may still be retried or resolved"
        elif path in newest:
            action, reason = "kept", f"among the {keep} newest finished runs"
        elif cutoff is not None and created > cutoff:
            action, reason = "kept", f"newer than {older_than_days} days"
        else:
            action = "would prune" if dry_run else "pruned"
            reason = "finished" if state is not None else "no workflow in the store"
        size = _size(path)
        if action == "pruned":
            _remove_run_folder(runs, path)
        result.folders.append(RunFolder(path.name, path, state, created, size, action, reason))
    return result


def _remove_run_folder(runs: Path, path: Path) -> None:
    # Only ever a direct child of state/runs/, never through a symlink (rmtree does not follow them).
    if path.parent.resolve() != runs.resolve() or path.is_symlink():
        raise ConfigError(f"refusing to remove {path}: not a run folder")
    shutil.rmtree(path)
