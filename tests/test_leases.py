"""Leases in the store (SQLite and a real PostgreSQL): exactly one holder, dead or silent holders taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pg import missing_reason, postgres_server
from ttsync.store import Store, schema
from ttsync.store.leases import (
    FORGET_HOLDER_PREFIX,
    Holder,
    LeaseHeldError,
    LeaseKeeper,
    acquire,
    get_lease,
    renew,
)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'ttsync.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # each test starts from an empty database
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    with Store.open(url) as opened:
        yield opened


def _dead_pid() -> int:
    """The pid of a process that has exited (reaped: the pid no longer exists)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_racing_acquirers_exactly_one_wins(store: Store) -> None:
    # Twelve threads, each a different holder (pid), race for one resource at a barrier.
    barrier = threading.Barrier(12)
    won: list[int] = []
    refused: list[str] = []

    def contend(i: int) -> None:
        holder = Holder(pid=10_000_000 + i, host="elsewhere")  # another host: only a heartbeat decides
        barrier.wait()
        try:
            acquire(store, "orchestration:x", f"wf{i}", timeout=60, holder=holder)
        except LeaseHeldError as exc:
            refused.append(exc.lease.workflow_id)
        else:
            won.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert len(refused) == 11
    assert set(refused) == {f"wf{won[0]}"}  # every loser is told who runs
    lease = get_lease(store, "orchestration:x")
    assert lease is not None
    assert lease.workflow_id == f"wf{won[0]}"


def test_dead_holder_on_this_host_is_taken_over(store: Store) -> None:
    dead = Holder(pid=_dead_pid(), host=Holder.me().host)
    acquire(store, "orchestration:x", "old", timeout=600, holder=dead)
    taken = acquire(store, "orchestration:x", "new", timeout=600)
    assert taken is not None
    assert taken.workflow_id == "old"
    # The dead holder is fenced: its renewals fail from now on.
    assert renew(store, ["orchestration:x"], "old", holder=dead) is False


def test_live_holder_refuses_and_silent_holder_is_taken_over(store: Store) -> None:
    other = Holder(pid=4242, host="another-machine")
    acquire(store, "orchestration:x", "remote", timeout=60, holder=other)
    with pytest.raises(LeaseHeldError, match="workflow remote is running"):
        acquire(store, "orchestration:x", "mine", timeout=60)
    with store.engine.begin() as conn:  # the remote holder fell silent five minutes ago
        conn.execute(sa.update(schema.leases).values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)))
    taken = acquire(store, "orchestration:x", "mine", timeout=60)
    assert taken is not None
    assert taken.workflow_id == "remote"


def test_keeper_renews_heartbeat_and_releases(store: Store) -> None:
    with LeaseKeeper(store, "wf", timeout=0.4) as keeper:
        keeper.acquire("orchestration:x")
        first = get_lease(store, "orchestration:x")
        assert first is not None
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while datetime.now(UTC) < deadline:
            now = get_lease(store, "orchestration:x")
            assert now is not None
            if now.heartbeat_at > first.heartbeat_at:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the heartbeat was never renewed")
        keeper.check()  # still ours
    assert get_lease(store, "orchestration:x") is None


def test_a_forget_request_holding_a_lease_is_named_as_one(store: Store) -> None:
    # `forget --now` is not a workflow: the refusal must point at `forget --report`, not `workflows show`.
    acquire(store, "orchestration:x", f"{FORGET_HOLDER_PREFIX}f-123", timeout=60)
    with pytest.raises(LeaseHeldError, match=r"forget request f-123 \(`ttsync forget --report`\) is running"):
        acquire(store, "orchestration:x", "mine", timeout=60)
