"""Deliver a planned audience change through the partner Segment API (`segment/mapping/`, ref §2.1).

Removes go first, then adds, in fixed batches (see `plan.iter_*_batches`), enough requests in flight at once
to keep the pace of the client's rate limiter (see `in_flight_for`), while a worker thread reads the next
batches and builds their bodies. Each batch TikTok confirms is recorded in a checkpoint, so a
resumed delivery skips what TikTok already confirmed; the snapshot itself is committed by the caller only
after every batch of the plan is confirmed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

import duckdb
import pyarrow as pa

from ttsync.destinations.tiktok.client.batch_data import batch_data_bytes
from ttsync.sync.plan import AudiencePlan, batch_count, iter_add_batches, iter_remove_batches


class MappingSender(Protocol):
    """What delivery needs from the TikTok client: one `segment/mapping/` call with a prebuilt batch_data."""

    async def __call__(
        self, *, action: str, advertiser_ids: Sequence[str], id_schema: Sequence[str], batch_data_json: bytes
    ) -> None: ...


@dataclass
class MappingCheckpoint:
    """Batches TikTok confirmed, per phase. Stored as JSON in the workflow task's checkpoint."""

    audience_id: str
    batch_rows: int
    removed: set[int] = field(default_factory=set)
    added: set[int] = field(default_factory=set)

    def to_json(self) -> dict[str, object]:
        """JSON form; batch indexes as compact [start, end) ranges."""
        return {
            "audience_id": self.audience_id,
            "batch_rows": self.batch_rows,
            "removed": _ranges(self.removed),
            "added": _ranges(self.added),
        }

    @classmethod
    def from_json(
        cls, data: dict[str, object] | None, audience_id: str, batch_rows: int
    ) -> MappingCheckpoint:
        """Restore a checkpoint; one for another audience or batch size counts as none."""
        if not data or data.get("audience_id") != audience_id or data.get("batch_rows") != batch_rows:
            return cls(audience_id=audience_id, batch_rows=batch_rows)
        return cls(
            audience_id=audience_id,
            batch_rows=batch_rows,
            removed=_unranges(data.get("removed")),
            added=_unranges(data.get("added")),
        )


@dataclass
class DeliveryCounts:
    """What this delivery call sent (skipped = already confirmed by an earlier attempt)."""

    removed_ids: int = 0
    added_ids: int = 0
    requests: int = 0
    batches_skipped: int = 0

    def record(self, action: str, ids: int) -> None:
        """Count one confirmed request of `ids` identifiers."""
        self.requests += 1
        if action == "add":
            self.added_ids += ids
        else:
            self.removed_ids += ids

    def to_dict(self) -> dict[str, int]:
        """JSON-friendly form."""
        return {
            "removed_ids": self.removed_ids,
            "added_ids": self.added_ids,
            "requests": self.requests,
            "batches_skipped": self.batches_skipped,
        }


Progress = Callable[[str, int], None]  # (phase, identifiers just confirmed)
SaveCheckpoint = Callable[[MappingCheckpoint], None]  # called in a worker thread, in order

# How long a request may hold its place in flight (its wait for the rate limiter plus TikTok's answer) while
# the sends still keep the limiter's pace: by Little's law, `qps * LATENCY_BUDGET_SECONDS` requests in flight.
LATENCY_BUDGET_SECONDS: Final = 0.5
# At most this many: each holds a batch and its ~1 MB body, and a crash re-sends what was in flight.
MAX_IN_FLIGHT: Final = 32


def in_flight_for(qps: float, at_least: int) -> int:
    """Requests to keep in flight at `qps` requests per second: enough to keep that pace while each request
    takes up to `LATENCY_BUDGET_SECONDS` from its slot to TikTok's answer, `at_least` and at most
    `MAX_IN_FLIGHT` (a larger `at_least` wins)."""
    return max(at_least, min(MAX_IN_FLIGHT, math.ceil(qps * LATENCY_BUDGET_SECONDS)))


async def deliver_partner(
    con: duckdb.DuckDBPyConnection,
    plan: AudiencePlan,
    *,
    send: MappingSender,
    advertiser_ids: Sequence[str],
    checkpoint: MappingCheckpoint,
    save_checkpoint: SaveCheckpoint,
    progress: Progress | None = None,
    in_flight: int = 8,
) -> DeliveryCounts:
    """Send the plan's removes then adds; return counts (see `PartnerDelivery`, which this makes and runs once)."""
    with PartnerDelivery(con, plan, checkpoint, in_flight=in_flight) as delivery:
        return await delivery.send_all(
            send=send, advertiser_ids=advertiser_ids, save_checkpoint=save_checkpoint, progress=progress
        )


class PartnerDelivery:
    """The delivery of one plan: removes, then adds, in batches; raises the client's typed error on failure.

    Up to `in_flight` requests are sent at once (the client's rate limiter paces them). The batches are read
    and their bodies built in a worker thread, so the event loop only sends; that thread starts on the first
    body as soon as the delivery is made, so it is ready once the caller is (its in-flight record written, its
    client made). Every confirmed batch is checkpointed (one small store write per batch, stored in order off
    the event loop), so a crash re-sends only the batches that were in flight (at most `in_flight`) or whose
    write had not landed yet. On failure the checkpoint already holds every batch TikTok confirmed before the
    error, so `send_all` again (or a new delivery with the same plan and checkpoint) continues from there.

    Use it as a context manager: leaving stops the worker thread.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        plan: AudiencePlan,
        checkpoint: MappingCheckpoint,
        *,
        in_flight: int = 8,
    ) -> None:
        self._con = con.cursor()  # a connection of its own: the caller may use `con` while the thread reads
        self._plan = plan
        self._checkpoint = checkpoint
        self._in_flight = in_flight
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="ttsync-bodies")
        self._phases = self._open_phases()
        self._first: Future[tuple[int, bytes, int] | None] | None = (
            self._builder.submit(self._phases[0][1].next) if self._phases else None
        )

    def __enter__(self) -> PartnerDelivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self._builder.shutdown(wait=True, cancel_futures=True)
        self._con.close()

    def _open_phases(self) -> list[tuple[str, _Bodies]]:
        """The phases with batches to send (an empty one is not even read), from the checkpoint as it is now."""
        plan, checkpoint, rows = self._plan, self._checkpoint, self._checkpoint.batch_rows
        audience = [checkpoint.audience_id]
        removes, adds = expected_batches(plan, rows)
        phases = []
        if removes:
            batches = iter_remove_batches(self._con, plan, rows)
            phases.append(("delete", _Bodies(batches, frozenset(checkpoint.removed), audience)))
        if adds:
            phases.append(
                (
                    "add",
                    _Bodies(iter_add_batches(self._con, plan, rows), frozenset(checkpoint.added), audience),
                )
            )
        return phases

    async def _next_body(self, bodies: _Bodies) -> tuple[int, bytes, int] | None:
        """The next body of `bodies`, read and built in the worker thread (the one made ahead, first)."""
        first, self._first = self._first, None
        if first is not None:
            return await asyncio.wrap_future(first)
        return await asyncio.get_running_loop().run_in_executor(self._builder, bodies.next)

    async def send_all(
        self,
        *,
        send: MappingSender,
        advertiser_ids: Sequence[str],
        save_checkpoint: SaveCheckpoint,
        progress: Progress | None = None,
    ) -> DeliveryCounts:
        """Send every batch the checkpoint does not hold yet; return what this call sent."""
        phases, self._phases = (self._phases or self._open_phases()), []
        checkpoint = self._checkpoint
        counts = DeliveryCounts()
        failures: list[BaseException] = []
        schemas = list(self._plan.id_schemas)
        with _CheckpointWriter(save_checkpoint, failures) as writer:

            async def send_one(
                action: str, done: set[int], slots: asyncio.Semaphore, index: int, body: bytes, ids: int
            ) -> None:
                try:
                    await send(
                        action=action, advertiser_ids=advertiser_ids, id_schema=schemas, batch_data_json=body
                    )
                except Exception as exc:  # the typed client error; re-raised after in-flight batches settle
                    failures.append(exc)
                    return
                finally:
                    slots.release()
                done.add(index)
                counts.record(action, ids)
                if progress is not None:
                    progress(action, ids)
                await writer.save(checkpoint)

            for action, bodies in phases:
                done = checkpoint.added if action == "add" else checkpoint.removed
                slots = asyncio.Semaphore(self._in_flight)
                tasks: list[asyncio.Task[None]] = []
                try:
                    while True:
                        await slots.acquire()
                        if failures:  # stop producing batches after the first failure (a send's or a save's)
                            break
                        item = await self._next_body(bodies)  # sends in flight go on meanwhile
                        if item is None:
                            break
                        tasks.append(asyncio.create_task(send_one(action, done, slots, *item)))
                finally:
                    await asyncio.gather(*tasks, return_exceptions=True)
                counts.batches_skipped += bodies.skipped
                await writer.flush()
                if failures:
                    raise failures[0]
        return counts


class _Bodies:
    """The request bodies of one phase, in batch order, skipping batches TikTok already confirmed. `next` runs
    in a worker thread: reading the plan (DuckDB) and building a body (Arrow kernels) mostly run outside the
    GIL, so the event loop keeps sending meanwhile."""

    def __init__(self, batches: Iterator[pa.RecordBatch], skip: frozenset[int], audience: list[str]) -> None:
        self._batches = enumerate(batches)
        self._skip = skip
        self._audience = audience
        self.skipped = 0

    def next(self) -> tuple[int, bytes, int] | None:
        """(batch index, body, identifiers in it) of the next batch to send; None after the last one."""
        for index, batch in self._batches:
            if index in self._skip:
                self.skipped += 1
                continue
            return index, batch_data_bytes(batch, self._audience), _non_null_cells(batch)
        return None


class _CheckpointWriter:
    """Stores checkpoints in order, in a thread of its own: a store write ends with an fsync, and on the event
    loop it would hold every send back meanwhile. Each save stores a copy taken when it was asked for, so
    every confirmed batch still gets its own write (the crash tests count them); `flush` waits for all of
    them. A failed save (e.g. the workflow's lease was lost) lands in `failures`, which stops the sending."""

    def __init__(self, save: SaveCheckpoint, failures: list[BaseException]) -> None:
        self._save = save
        self._failures = failures
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ttsync-checkpoint")
        self._pending: list[asyncio.Future[object]] = []

    async def save(self, checkpoint: MappingCheckpoint) -> None:
        """Queue a store write of the checkpoint as it is now."""
        frozen = replace(checkpoint, removed=set(checkpoint.removed), added=set(checkpoint.added))
        future: asyncio.Future[object] = asyncio.get_running_loop().run_in_executor(
            self._pool, self._save, frozen
        )
        future.add_done_callback(self._failed)
        self._pending.append(future)

    def _failed(self, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._failures.append(future.exception())  # type: ignore[arg-type]

    async def flush(self) -> None:
        """Wait until every queued write is stored (their failures are in `failures`)."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> _CheckpointWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def expected_batches(plan: AudiencePlan, batch_rows: int) -> tuple[int, int]:
    """(remove batches, add batches) for a plan at a batch size."""
    return batch_count(plan.remove_ids, batch_rows), batch_count(plan.add_rows, batch_rows)


def _non_null_cells(batch: pa.RecordBatch) -> int:
    return sum(len(column) - column.null_count for column in batch.columns)


def _ranges(values: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for value in sorted(values):
        if out and out[-1][1] == value:
            out[-1][1] = value + 1
        else:
            out.append([value, value + 1])
    return out


def _unranges(data: object) -> set[int]:
    values: set[int] = set()
    if isinstance(data, list):
        for item in data:
            if isinstance(item, list) and len(item) == 2:
                values.update(range(int(item[0]), int(item[1])))
    return values
