"""Leases: at most one active workflow per orchestration and per TikTok audience.

A lease is a row of the `leases` table naming a resource (`orchestration:NAME`, `audience:ADVERTISER:ID`),
the workflow that runs on it, and the process holding it (pid and host) with a heartbeat the holder renews
while it runs (`LeaseKeeper`). A lease is *live* while its heartbeat is younger than the timeout and, on this
host, its pid still exists; a dead or silent holder's lease is taken over. Taking a lease is one transaction:
of two processes racing for it exactly one wins (SQLite: `BEGIN IMMEDIATE` serializes writers; PostgreSQL:
`SELECT ... FOR UPDATE`, and the primary key refuses the second of two inserts).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from ttsync.errors import ResolvableError
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.records import LeaseRecord
from ttsync.store.rows import utc_now

log = logging.getLogger(__name__)

LEASE_TIMEOUT_ENV = "TTSYNC_LEASE_TIMEOUT_SECONDS"
DEFAULT_LEASE_TIMEOUT = 120.0  # seconds without a heartbeat after which a lease on another host is taken over


def lease_timeout() -> float:
    """Seconds of heartbeat silence after which a lease is taken over (`$TTSYNC_LEASE_TIMEOUT_SECONDS`)."""
    text = os.environ.get(LEASE_TIMEOUT_ENV)
    if not text:
        return DEFAULT_LEASE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{LEASE_TIMEOUT_ENV} must be a number of seconds, e.g. 120; got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{LEASE_TIMEOUT_ENV} must be more than 0 seconds; got {text!r}")
    return value


def orchestration_resource(name: str) -> str:
    """The lease resource of an orchestration."""
    return f"orchestration:{name}"


def audience_resource(advertiser_id: str, audience_id: str) -> str:
    """The lease resource of one TikTok audience."""
    return f"audience:{advertiser_id}:{audience_id}"


class LeaseHeldError(Exception):
    """Another live workflow holds the lease."""

    def __init__(self, lease: LeaseRecord) -> None:
        super().__init__(
            f"{_holder_name(lease.workflow_id)} is running on {lease.resource.split(':', 1)[1]} "
            f"(pid {lease.holder_pid} on {lease.holder_host}, last heartbeat "
            f"{lease.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
        self.lease = lease


# `ttsync forget --now` holds a sync's leases under this prefix + the request id; it is not a workflow, so a
# refusal must not send the user to `ttsync workflows show` for it.
FORGET_HOLDER_PREFIX = "forget-"


def _holder_name(workflow_id: str) -> str:
    """How a refusal names a lease holder: a workflow, or a forget request (`ttsync forget --report`)."""
    if workflow_id.startswith(FORGET_HOLDER_PREFIX):
        request = workflow_id.removeprefix(FORGET_HOLDER_PREFIX)
        return f"forget request {request} (`ttsync forget --report`)"
    return f"workflow {workflow_id}"


@dataclass(frozen=True)
class Holder:
    """This process, as a lease holder."""

    pid: int
    host: str

    @classmethod
    def me(cls) -> Holder:
        """The current process."""
        return cls(os.getpid(), socket.gethostname())


def _record(row: sa.RowMapping) -> LeaseRecord:
    values = {
        k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v)
        for k, v in row.items()
    }
    return LeaseRecord.model_validate(values)


def is_live(lease: LeaseRecord, *, timeout: float, now: datetime | None = None) -> bool:
    """Whether the holder still runs: a fresh heartbeat and, on this host, a pid that exists."""
    if (now or utc_now()) - lease.heartbeat_at > timedelta(seconds=timeout):
        return False
    if lease.holder_host != socket.gethostname():
        return True  # another machine: only its heartbeat can tell
    return pid_alive(lease.holder_pid)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs. A zombie does not: a killed process whose parent died too is
    adopted by the container's init, which may reap it late, and until then `kill(pid, 0)` still succeeds."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        # /proc/PID/stat: "pid (comm) STATE ..."; comm may contain spaces and parentheses, so split at the last ")".
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # not Linux, or gone meanwhile: kill said it existed
    return state != "Z"


def get_lease(store: Store, resource: str) -> LeaseRecord | None:
    """The lease of `resource`, live or not, or None."""
    table = schema.leases
    with store.read() as conn:
        row = conn.execute(sa.select(table).where(table.c.resource == resource)).mappings().first()
    return None if row is None else _record(row)


def leases_of(store: Store, workflow_id: str) -> list[LeaseRecord]:
    """Every lease row naming `workflow_id`."""
    table = schema.leases
    with store.read() as conn:
        rows = conn.execute(sa.select(table).where(table.c.workflow_id == workflow_id)).mappings().all()
    return [_record(row) for row in rows]


def acquire(
    store: Store, resource: str, workflow_id: str, *, timeout: float, holder: Holder | None = None
) -> LeaseRecord | None:
    """Take the lease of `resource` for `workflow_id` (atomically); return the dead lease taken over, if any.

    Raises `LeaseHeldError` when a live holder (another process, or another workflow) has it."""
    me = holder or Holder.me()
    table = schema.leases
    for _attempt in range(2):  # a lost insert race on PostgreSQL reads the winner's row on the second pass
        try:
            with store.engine.begin() as conn:
                query = sa.select(table).where(table.c.resource == resource)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                row = conn.execute(query).mappings().first()
                now = utc_now()
                values = {
                    "workflow_id": workflow_id,
                    "holder_pid": me.pid,
                    "holder_host": me.host,
                    "acquired_at": now,
                    "heartbeat_at": now,
                }
                if row is None:
                    conn.execute(sa.insert(table).values(resource=resource, **values))
                    return None
                current = _record(row)
                mine = (current.holder_pid, current.holder_host) == (me.pid, me.host)
                if not mine and is_live(current, timeout=timeout, now=now):
                    raise LeaseHeldError(current)
                if mine and current.workflow_id != workflow_id:
                    raise LeaseHeldError(current)
                conn.execute(sa.update(table).where(table.c.resource == resource).values(**values))
                return None if mine else current
        except sa.exc.IntegrityError:
            continue
    raise LeaseHeldError(get_lease(store, resource) or _missing(resource))


def _missing(resource: str) -> LeaseRecord:  # pragma: no cover - the row vanished between two reads
    now = utc_now()
    return LeaseRecord(
        resource=resource, workflow_id="?", holder_pid=0, holder_host="?", acquired_at=now, heartbeat_at=now
    )


def renew(store: Store, resources: Sequence[str], workflow_id: str, *, holder: Holder | None = None) -> bool:
    """Renew the heartbeat of this holder's leases; False when one of them was taken over (fenced)."""
    me = holder or Holder.me()
    table = schema.leases
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(table)
            .where(
                table.c.resource.in_(list(resources)),
                table.c.workflow_id == workflow_id,
                table.c.holder_pid == me.pid,
                table.c.holder_host == me.host,
            )
            .values(heartbeat_at=utc_now())
        )
    return result.rowcount == len(set(resources))


def release(store: Store, workflow_id: str, *, holder: Holder | None = None) -> None:
    """Give up every lease this holder has for `workflow_id`."""
    me = holder or Holder.me()
    table = schema.leases
    with store.engine.begin() as conn:
        conn.execute(
            sa.delete(table).where(
                table.c.workflow_id == workflow_id,
                table.c.holder_pid == me.pid,
                table.c.holder_host == me.host,
            )
        )


class LeaseKeeper:
    """Holds a workflow's leases for one process: renews their heartbeat from a thread (tasks that block the
    event loop, such as a long DuckDB step, still renew), and tells the workflow when it was fenced off."""

    def __init__(self, store: Store, workflow_id: str, *, timeout: float) -> None:
        self.store = store
        self.workflow_id = workflow_id
        self.timeout = timeout
        self.resources: list[str] = []
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def acquire(self, resource: str) -> LeaseRecord | None:
        """Take one more lease (see `acquire`); the keeper renews it from now on."""
        taken = acquire(self.store, resource, self.workflow_id, timeout=self.timeout)
        with self._lock:
            if resource not in self.resources:
                self.resources.append(resource)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="ttsync-lease", daemon=True)
            self._thread.start()
        return taken

    def _beat(self) -> None:
        interval = max(self.timeout / 4, 0.05)
        while not self._stop.wait(interval):
            with self._lock:
                resources = list(self.resources)
            try:
                if not renew(self.store, resources, self.workflow_id):
                    self.lost.set()
                    return
            except Exception as exc:  # a store hiccup: the next beat tries again; long silence fences
                log.warning(
                    "could not renew the lease of workflow %s: %s", self.workflow_id, type(exc).__name__
                )

    def check(self) -> None:
        """Raise `LeaseLostError` when another process took this workflow's lease over."""
        if self.lost.is_set():
            raise LeaseLostError(
                f"workflow {self.workflow_id} lost its lease (another process took it over after a long "
                "silence): it stopped so that two processes never write to one audience"
            )

    def close(self) -> None:
        """Stop renewing and release the leases."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost.is_set():
            release(self.store, self.workflow_id)

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LeaseLostError(ResolvableError):
    """This process's lease was taken over: it must stop writing."""

    resolution_key = "workflow_running"
