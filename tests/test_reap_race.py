"""A workflow that finishes while `reap_interrupted` looks at it keeps its final state (the server reads
workflows, and so reaps, many times a second while workers finish runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttsync.store import leases, repos
from ttsync.store.db import Store, sqlite_url
from ttsync.store.records import LeaseRecord
from ttsync.workflows import ownership


def test_a_workflow_finishing_during_the_reap_keeps_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(sqlite_url(tmp_path / "s.db")) as store:
        wid = repos.create_workflow(store, "orch", "audience", ["query"], workflow_id="f" * 32).id
        repos.update_workflow(store, wid, state="running")
        real_leases_of = leases.leases_of

        # The interleaving to test: the worker stores `succeeded` and releases its lease after the reaper read
        # the `running` list and before it looks at the leases. Patched in to make that order certain.
        def finishing(store_: Store, workflow_id: str) -> list[LeaseRecord]:
            repos.update_workflow(store_, workflow_id, state="succeeded")
            return real_leases_of(store_, workflow_id)

        monkeypatch.setattr(leases, "leases_of", finishing)
        assert ownership.reap_interrupted(store) == []
        assert repos.get_workflow(store, wid).state == "succeeded"


def test_a_running_workflow_without_a_live_lease_is_interrupted(tmp_path: Path) -> None:
    with Store.open(sqlite_url(tmp_path / "s.db")) as store:
        wid = repos.create_workflow(store, "orch", "audience", ["query"], workflow_id="e" * 32).id
        repos.update_workflow(store, wid, state="running")
        repos.update_task(store, wid, "query", state="running")
        assert ownership.reap_interrupted(store) == [wid]
        workflow = repos.get_workflow(store, wid)
        assert workflow.state == "interrupted"
        assert [task.state for task in workflow.tasks] == ["interrupted"]
