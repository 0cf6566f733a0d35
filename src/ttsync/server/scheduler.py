"""The scheduler: runs orchestrations on their cron `schedule` in the server's time zone.

Exactly one scheduler acts per store: each tick first takes (or renews) the `scheduler:leader` lease in the
store's `leases` table (the lease mechanism of the workflows); a server that does not hold it only waits. A
due orchestration whose previous run is still active is not started: its schedule records "skipped: still
running". Runs missed while no server ran are skipped, unless the orchestration says `catch_up: true` (then
one runs when the server starts); an orchestration without `catch_up` follows the server's `--catch-up`
(skip, or latest).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from ttsync.app import background
from ttsync.errors import RunRefusedError
from ttsync.store import repos, runqueue
from ttsync.store.db import Store
from ttsync.store.leases import LeaseHeldError, acquire, get_lease, is_live
from ttsync.store.runqueue import ScheduleRecord

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
        """One pass: if leader, queue every due orchestration; returns the names queued."""
        if not self.lead():
            return []
        now = now or datetime.now(UTC)
        started = []
        for item in repos.list_orchestrations(self.store):
            if not item.schedule or not item.enabled:
                continue
            state = runqueue.get_schedule(self.store, item.name)
            if state is None or state.cron != item.schedule or state.next_run_at is None:
                nxt = next_after(item.schedule, now, self.zone)
                runqueue.put_schedule(self.store, ScheduleRecord(
                    orchestration=item.name, cron=item.schedule, next_run_at=nxt,
                    last_run_at=state.last_run_at if state else None,
                    last_outcome=state.last_outcome if state else None, updated_at=now,
                ))  # fmt: skip
                continue
            if state.next_run_at > now:
                continue
            # Due. Was it due just now, or missed while no server ran?
            missed = now - state.next_run_at > timedelta(seconds=max(self.tick_seconds * 3, 60))
            outcome: str
            if missed and not self.catches_up(item.catch_up):
                outcome = f"skipped: missed at {state.next_run_at:%Y-%m-%d %H:%M} UTC while no server ran"
            elif background.orchestration_active(self.store, item.name):
                outcome = background.STILL_RUNNING
            else:
                try:
                    queued = background.enqueue(
                        self.store, item.name, "run", actor="scheduler", origin="schedule"
                    )
                    outcome = f"queued workflow {queued.workflow_id}"
                    started.append(item.name)
                except RunRefusedError:
                    outcome = background.STILL_RUNNING
            log.info("schedule of %s: %s", item.name, outcome)
            runqueue.put_schedule(self.store, ScheduleRecord(
                orchestration=item.name, cron=item.schedule, next_run_at=next_after(item.schedule, now, self.zone),
                last_run_at=now, last_outcome=outcome, updated_at=now,
            ))  # fmt: skip
        return started

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
