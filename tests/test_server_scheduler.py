"""The scheduler: due runs are queued once, missed runs are skipped unless catch_up is latest (the server's
flag) or true (the orchestration's setting, which wins), a run is never
started while the previous one is active ("skipped: still running"), and of two real servers on one real
PostgreSQL store exactly one schedules (the leader lease), the other taking over when it dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from pg import missing_reason, postgres_server
from server_env import add_admin, running_server, server_environ
from ttsync.app.campaign_deliveries import deliveries
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace, load_config
from ttsync.config.campaigns import Campaign
from ttsync.config.models import Orchestration
from ttsync.server.scheduler import Scheduler, next_after
from ttsync.store import repos, runqueue, schema
from ttsync.store.db import Store
from ttsync.store.leases import acquire, orchestration_resource, release
from ttsync.store.runqueue import ScheduleRecord

SECRETS = {
    "TTSYNC_APP_SECRET": "app-secret-for-tests",
    "TTSYNC_ACCESS_TOKEN": "token-for-tests",
    "TTSYNC_SANDBOX_URL": "http://127.0.0.1:9/open_api/v1.3/",  # nothing listens: scheduled runs fail fast
}
ORCH = "high-value-customers"  # scheduled "0 6 * * *" in the sample


def _workspace(root: Path, environ: dict[str, str] | None = None) -> Workspace:
    workspace = init_workspace(root, sample=True, rows=100).workspace
    with workspace.open_store() as store:
        apply_config(store, load_config(workspace.config_path, environ=SECRETS))
    return workspace


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.delenv("TTSYNC_STORE_URL", raising=False)
    workspace = _workspace(tmp_path / "ws")
    with workspace.open_store() as opened:
        yield opened


def _due(store: Store, at: datetime) -> None:
    runqueue.put_schedule(
        store, ScheduleRecord(orchestration=ORCH, cron="0 6 * * *", next_run_at=at, updated_at=at)
    )


def _queued(store: Store) -> list[runqueue.QueuedRun]:
    with store.engine.connect() as conn:
        ids = conn.execute(sa.select(schema.run_queue.c.id)).scalars().all()
    return [runqueue.get_queued(store, i) for i in ids]


def test_first_sight_sets_the_next_run_in_the_time_zone(store: Store) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    Scheduler(store, zone="America/New_York").tick(now)
    state = runqueue.get_schedule(store, ORCH)
    assert state is not None
    assert state.next_run_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)  # 06:00 EST
    assert _queued(store) == []
    assert next_after("0 6 * * *", now, Scheduler(store, zone="UTC").zone) == datetime(
        2026, 3, 2, 6, 0, tzinfo=UTC
    )


def test_a_due_schedule_queues_one_run_and_moves_on(store: Store) -> None:
    now = datetime.now(UTC)
    _due(store, now - timedelta(seconds=1))
    scheduler = Scheduler(store)
    assert scheduler.tick(now) == [ORCH]
    assert scheduler.tick(now) == []  # the next run is tomorrow
    [item] = _queued(store)
    assert (item.origin, item.requested_by, item.state) == ("schedule", "scheduler", "queued")
    state = runqueue.get_schedule(store, ORCH)
    assert state is not None
    assert state.last_outcome == f"queued workflow {item.workflow_id}"
    assert state.next_run_at is not None
    assert state.next_run_at > now


def test_missed_runs_are_skipped_unless_catch_up_latest(store: Store) -> None:
    now = datetime.now(UTC)
    _due(store, now - timedelta(hours=3))
    scheduler = Scheduler(store)
    assert scheduler.tick(now) == []
    state = runqueue.get_schedule(store, ORCH)
    assert state is not None
    assert state.last_outcome is not None
    assert state.last_outcome.startswith("skipped: missed")
    _due(store, now - timedelta(hours=3))
    scheduler.catch_up = "latest"
    assert scheduler.tick(now) == [ORCH]


def _set_catch_up(store: Store, value: object) -> None:
    orchestration = repos.get_orchestration(store, ORCH)
    repos.save_orchestration(
        store, Orchestration.model_validate(orchestration.model_dump() | {"catch_up": value})
    )


def test_an_orchestration_with_catch_up_true_runs_a_missed_schedule_once(store: Store) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the server comes back 3 hours after the 06:00 run
    _set_catch_up(store, True)
    _due(store, start - timedelta(hours=3))
    scheduler = Scheduler(store)  # the server's default: skip
    assert scheduler.tick(start) == [ORCH]
    assert scheduler.tick(start + timedelta(seconds=10)) == []  # once, not once per missed day or tick
    [item] = _queued(store)
    state = runqueue.get_schedule(store, ORCH)
    assert state is not None
    assert state.last_outcome == f"queued workflow {item.workflow_id}"
    assert state.next_run_at == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)  # then on its cron again


def test_an_orchestration_with_catch_up_false_skips_even_when_the_server_catches_up(store: Store) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    _set_catch_up(store, "skip")  # the server flag's words are accepted too
    assert repos.get_orchestration(store, ORCH).catch_up is False
    _due(store, start - timedelta(hours=3))
    assert Scheduler(store, catch_up="latest").tick(start) == []
    state = runqueue.get_schedule(store, ORCH)
    assert state is not None
    assert state.last_outcome == "skipped: missed at 2026-03-02 06:00 UTC while no server ran"
    assert _queued(store) == []


def test_catch_up_refuses_other_values_with_a_fix(store: Store) -> None:
    with pytest.raises(ValidationError, match=r"catch_up is true .* or false"):
        _set_catch_up(store, "sometimes")


def test_never_starts_while_the_previous_run_is_active(store: Store) -> None:
    now = datetime.now(UTC)
    acquire(store, orchestration_resource(ORCH), "a-cli-run", timeout=60)  # a run of this process holds it
    try:
        _due(store, now - timedelta(seconds=1))
        assert Scheduler(store).tick(now) == []
        state = runqueue.get_schedule(store, ORCH)
        assert state is not None
        assert state.last_outcome == "skipped: still running"
        assert _queued(store) == []
    finally:
        release(store, "a-cli-run")


def test_only_the_lease_holder_schedules(store: Store) -> None:
    first, second = Scheduler(store, tick=5), Scheduler(store, tick=5)
    assert first.lead()
    assert not second.lead()
    now = datetime.now(UTC)
    _due(store, now - timedelta(seconds=1))
    assert second.tick(now) == []
    assert first.tick(now) == [ORCH]


CAMPAIGN = "spring-offer"  # the sample's campaign (no schedule of its own)


def _schedule_campaign(store: Store, **changes: object) -> Campaign:
    campaign = Campaign.model_validate(repos.get_campaign(store, CAMPAIGN).model_dump() | changes)
    repos.save_campaign(store, campaign)
    return campaign


def _campaign_state(store: Store) -> ScheduleRecord:
    state = runqueue.get_schedule(store, CAMPAIGN, "campaign")
    assert state is not None
    return state


def test_campaigns_run_on_their_cron_between_launch_and_end_never_twice_at_once(store: Store) -> None:
    zone = "America/New_York"
    _schedule_campaign(
        store, schedule="30 7 * * *", launch_date=date(2026, 3, 10), end_date=date(2026, 3, 11)
    )
    scheduler = Scheduler(store, zone=zone)
    # Before the launch date the next run is the first one on the launch day (07:30 EDT), nothing is queued.
    assert scheduler.tick(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == []
    assert _campaign_state(store).next_run_at == datetime(2026, 3, 10, 11, 30, tzinfo=UTC)
    # A run that came due before the launch date (the date moved since) is skipped and says why.
    runqueue.put_schedule(
        store,
        _campaign_state(store).model_copy(update={"next_run_at": datetime(2026, 3, 9, 11, 30, tzinfo=UTC)}),
    )
    assert scheduler.tick(datetime(2026, 3, 9, 11, 30, 5, tzinfo=UTC)) == []
    assert _campaign_state(store).last_outcome == "skipped: not launched (launch date 2026-03-10)"
    assert _queued(store) == []
    # Launch day, 07:30 in the server's zone: one campaign run, for that day.
    launch = datetime(2026, 3, 10, 11, 30, 5, tzinfo=UTC)
    assert scheduler.tick(launch) == [CAMPAIGN]
    [item] = _queued(store)
    assert (item.kind, item.orchestration, item.run_day, item.origin) == (
        "campaign",
        CAMPAIGN,
        date(2026, 3, 10),
        "schedule",
    )
    state = _campaign_state(store)
    assert state.last_outcome == f"queued campaign run {item.workflow_id}"
    assert state.next_run_at == datetime(2026, 3, 11, 11, 30, tzinfo=UTC)
    # Due again while that run is still queued: skipped, nothing queued twice.
    day2 = datetime(2026, 3, 11, 11, 30, 5, tzinfo=UTC)
    assert scheduler.tick(day2) == []
    assert _campaign_state(store).last_outcome == "skipped: still running"
    assert len(_queued(store)) == 1
    # ... and the end date is the last day: no next run after it.
    assert _campaign_state(store).next_run_at is None
    assert scheduler.tick(day2 + timedelta(days=3)) == []
    assert len(_queued(store)) == 1
    # The schedule is listed with the orchestrations' (GET /api/schedules shows it).
    assert [(s.kind, s.orchestration) for s in runqueue.list_schedules(store) if s.kind == "campaign"] == [
        ("campaign", CAMPAIGN)
    ]


def test_a_campaign_is_not_started_while_a_delivery_runs_and_missed_runs_are_skipped(store: Store) -> None:
    campaign = _schedule_campaign(store, schedule="30 7 * * *", launch_date=date(2026, 1, 1))
    scheduler = Scheduler(store)
    now = datetime(2026, 3, 2, 7, 30, 5, tzinfo=UTC)
    due = ScheduleRecord(orchestration=CAMPAIGN, kind="campaign", cron="30 7 * * *", updated_at=now,
                         next_run_at=now - timedelta(seconds=5))  # fmt: skip
    [delivery, *_] = deliveries(store, campaign, now.date())
    acquire(store, orchestration_resource(delivery.orchestration.name), "a-cli-delivery", timeout=60)
    try:
        runqueue.put_schedule(store, due)
        assert scheduler.tick(now) == []
        assert _campaign_state(store).last_outcome == "skipped: still running"
    finally:
        release(store, "a-cli-delivery")
    runqueue.put_schedule(store, due.model_copy(update={"next_run_at": now - timedelta(hours=3)}))
    assert scheduler.tick(now) == []
    assert (_campaign_state(store).last_outcome or "").startswith("skipped: missed at 2026-03-02 04:30")
    assert _queued(store) == []
    runqueue.put_schedule(store, due.model_copy(update={"next_run_at": now - timedelta(hours=3)}))
    scheduler.catch_up = "latest"
    assert scheduler.tick(now) == [CAMPAIGN]


@pytest.mark.postgres
@pytest.mark.slow
def test_two_servers_on_one_postgres_never_double_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        environ = server_environ(SECRETS) | {"TTSYNC_STORE_URL": url}
        root = tmp_path / "ws"
        monkeypatch.setenv("TTSYNC_STORE_URL", url)
        _workspace(root)
        add_admin(root, environ)
        store = Store.open(url)
        try:
            args = ("--workers", "1", "--tick", "0.3")
            with running_server(root, environ, *args) as one, running_server(root, environ, *args) as two:
                leaders = _wait_for_leader([one.url, two.url])
                assert sum(leaders.values()) == 1
                _due(store, datetime.now(UTC) + timedelta(seconds=1))
                deadline = time.monotonic() + 20
                while not _queued(store) and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(2)  # several more ticks of both servers
                assert len([q for q in _queued(store) if q.origin == "schedule"]) == 1

                # The leader dies: the other server takes the lease over and schedules the next run.
                leader = one if leaders[one.url] else two
                follower = two if leader is one else one
                leader.process.send_signal(signal.SIGKILL)
                leader.process.wait()
                assert _wait_for_leader([follower.url])[follower.url]
                _due(store, datetime.now(UTC) + timedelta(seconds=1))
                deadline = time.monotonic() + 30
                while (
                    len([q for q in _queued(store) if q.origin == "schedule"]) < 2
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                assert len([q for q in _queued(store) if q.origin == "schedule"]) == 2
        finally:
            store.close()


def _wait_for_leader(urls: list[str]) -> dict[str, bool]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leaders = {}
        for url in urls:
            answer = httpx.get(url + "/readyz", timeout=5)
            leaders[url] = answer.status_code == 200 and bool(answer.json()["scheduler_leader"])
        if any(leaders.values()):
            return leaders
        time.sleep(0.3)
    raise AssertionError("no scheduler leader")
