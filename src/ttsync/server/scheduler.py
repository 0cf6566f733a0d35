"""The scheduler: runs orchestrations and campaigns on their cron `schedule` in the server's time zone.

Exactly one scheduler acts per store: each tick first takes (or renews) the `scheduler:leader` lease in the
store's `leases` table (the lease mechanism of the workflows); a server that does not hold it only waits. A
due orchestration whose previous run is still active is not started: its schedule records "skipped: still
running". Runs missed while no server ran are skipped, unless the orchestration says `catch_up: true` (then
one runs when the server starts); an orchestration without `catch_up` follows the server's `--catch-up`
(skip, or latest).

Campaigns (docs/campaigns.md) follow the same rules (missed runs follow the server's `--catch-up`), and their
dates: nothing is queued before the launch date or after the end date (days in the server's time zone); the
next run shown is the first one on or after the launch date, none after the end date. A campaign is "still
running" while a run of it, or of one of its deliveries, is queued, running or holds its lease.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from ttsync.app import background
from ttsync.config.campaigns import Campaign
from ttsync.errors import ResolvableError, RunRefusedError
from ttsync.redact import redact_error
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.leases import LeaseHeldError, acquire, get_lease, is_live
from ttsync.store.runqueue import RunKind, ScheduleRecord

log = logging.getLogger(__name__)

LEADER_RESOURCE = "scheduler:leader"


def next_after(cron: str, after: datetime, zone: ZoneInfo) -> datetime:
    """The first time of `cron` (in `zone`) strictly after `after`, in UTC."""
    value: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
    return value.astimezone(UTC)


class Scheduler:
    """Ticks in a thread of the server process (never in the event loop, never waiting on a run)."""

    def __init__(
        self, store: Store, *, zone: str = "UTC", tick: float = 10.0, catch_up: str = "skip"
    ) -> None:
        self.store = store
        self.zone = ZoneInfo(zone)
        self.tick_seconds = tick
        self.catch_up = catch_up
        self.instance = uuid.uuid4().hex  # this server, as the lease's "workflow"
        self.is_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def lead(self) -> bool:
        """Take or renew the leader lease; False when another live server holds it."""
        try:
            acquire(self.store, LEADER_RESOURCE, self.instance, timeout=self.tick_seconds * 3)
        except LeaseHeldError:
            self.is_leader = False
            return False
        self.is_leader = True
        return True

    def catches_up(self, setting: bool | None) -> bool:
        """Whether a missed run of an orchestration runs once: its `catch_up`, else the server's default."""
        return setting if setting is not None else self.catch_up == "latest"

    def leader_known(self) -> bool:
        """Whether some live server holds the leader lease (for /readyz)."""
        lease = get_lease(self.store, LEADER_RESOURCE)
        return lease is not None and is_live(lease, timeout=self.tick_seconds * 3)

    def tick(self, now: datetime | None = None) -> list[str]:
        """One pass: if leader, queue every due orchestration and campaign; returns the names queued."""
        if not self.lead():
            return []
        now = now or datetime.now(UTC)
        started = []
        for item in repos.list_orchestrations(self.store):
            if not item.schedule or not item.enabled:
                continue
            state = runqueue.get_schedule(self.store, item.name)
            if state is None or state.cron != item.schedule or state.next_run_at is None:
                self._put(
                    item.name,
                    "orchestration",
                    item.schedule,
                    next_after(item.schedule, now, self.zone),
                    now,
                    state,
                )
                continue
            if state.next_run_at > now:
                continue
            outcome = self._missed(state, now, item.catch_up) or self._queue_orchestration(item.name)
            if outcome.startswith("queued"):
                started.append(item.name)
            log.info("schedule of %s: %s", item.name, outcome)
            self._put(
                item.name,
                "orchestration",
                item.schedule,
                next_after(item.schedule, now, self.zone),
                now,
                state,
                outcome,
            )
        for campaign in repos.list_campaigns(self.store):
            if campaign.schedule and campaign.enabled and self._campaign_tick(campaign, now):
                started.append(campaign.name)
        return started

    def _missed(self, state: ScheduleRecord, now: datetime, catch_up: bool | None) -> str | None:
        """The outcome of a due run missed while no server ran and not caught up (None: run it)."""
        assert state.next_run_at is not None
        missed = now - state.next_run_at > timedelta(seconds=max(self.tick_seconds * 3, 60))
        if missed and not self.catches_up(catch_up):
            return f"skipped: missed at {state.next_run_at:%Y-%m-%d %H:%M} UTC while no server ran"
        return None

    def _queue_orchestration(self, name: str) -> str:
        if background.orchestration_active(self.store, name):
            return background.STILL_RUNNING
        try:
            queued = background.enqueue(self.store, name, "run", actor="scheduler", origin="schedule")
        except RunRefusedError:
            return background.STILL_RUNNING
        return f"queued workflow {queued.workflow_id}"

    def _campaign_next(self, campaign: Campaign, after: datetime) -> datetime | None:
        """The campaign's next run after `after`: not before its launch date, None after its end date."""
        assert campaign.schedule is not None
        launch = datetime.combine(campaign.launch_date, time(), self.zone) - timedelta(microseconds=1)
        nxt = next_after(campaign.schedule, max(after, launch), self.zone)
        if campaign.end_date is not None and nxt.astimezone(self.zone).date() > campaign.end_date:
            return None
        return nxt

    def _campaign_tick(self, campaign: Campaign, now: datetime) -> bool:
        """Queue the campaign when due; True when it was queued."""
        assert campaign.schedule is not None
        state = runqueue.get_schedule(self.store, campaign.name, "campaign")
        if state is None or state.cron != campaign.schedule or state.next_run_at is None:
            nxt = self._campaign_next(campaign, now)
            if state is None or state.cron != campaign.schedule or nxt is not None:
                self._put(campaign.name, "campaign", campaign.schedule, nxt, now, state)
            return False
        if state.next_run_at > now:
            return False
        day = now.astimezone(self.zone).date()
        outcome = self._missed(state, now, None) or self._campaign_gate(campaign, day)
        if outcome is None:
            outcome = self._queue_campaign(campaign.name, day)
        log.info("schedule of campaign %s: %s", campaign.name, outcome)
        self._put(
            campaign.name,
            "campaign",
            campaign.schedule,
            self._campaign_next(campaign, now),
            now,
            state,
            outcome,
        )
        return outcome.startswith("queued")

    @staticmethod
    def _campaign_gate(campaign: Campaign, day: date) -> str | None:
        """Why the campaign is not run on `day` (its dates), or None."""
        if day < campaign.launch_date:
            return f"skipped: not launched (launch date {campaign.launch_date})"
        if campaign.end_date is not None and day > campaign.end_date:
            return f"skipped: ended (end date {campaign.end_date})"
        return None

    def _queue_campaign(self, name: str, day: date) -> str:
        try:
            queued = background.enqueue_campaign(self.store, name, day, actor="scheduler", origin="schedule")
        except RunRefusedError:
            return background.STILL_RUNNING
        except ResolvableError as exc:  # e.g. its segment was deleted since: say so, keep scheduling others
            return f"not queued: {redact_error(exc)}"
        return f"queued campaign run {queued.workflow_id}"

    def _put(
        self,
        name: str,
        kind: RunKind,
        cron: str,
        nxt: datetime | None,
        now: datetime,
        state: ScheduleRecord | None,
        outcome: str | None = None,
    ) -> None:
        """Store a schedule's next run; with `outcome`, also its last run (now) and how it went."""
        runqueue.put_schedule(self.store, ScheduleRecord(
            orchestration=name, kind=kind, cron=cron, next_run_at=nxt,
            last_run_at=now if outcome is not None else (state.last_run_at if state else None),
            last_outcome=outcome if outcome is not None else (state.last_outcome if state else None),
            updated_at=now,
        ))  # fmt: skip

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a store hiccup: the next tick tries again
                log.warning("scheduler tick failed: %s", type(exc).__name__)
            self._stop.wait(self.tick_seconds)

    def start(self) -> None:
        """Tick in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="ttsync-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
