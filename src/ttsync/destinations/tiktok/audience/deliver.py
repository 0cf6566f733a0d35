"""Deliver a planned audience change through the partner Segment API (`segment/mapping/`, ref §2.1).

Removes go first, then adds, in fixed batches (see `plan.iter_*_batches`), several requests in flight at once
while the client's rate limiter paces them. Each batch TikTok confirms is recorded in a checkpoint, so a
resumed delivery skips what TikTok already confirmed; the snapshot itself is committed by the caller only
after every batch of the plan is confirmed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

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
    checkpoint_every: int = 1,
) -> DeliveryCounts:
    """Send the plan's removes then adds; return counts. Raises the client's typed error on failure.

    Every confirmed batch is checkpointed (`checkpoint_every=1`: one small store write per batch of 10,000
    identifiers, stored in order off the event loop), so a crash re-sends only the batches that were in
    flight (at most `in_flight`) or whose write had not landed yet.

    On failure the checkpoint already holds every batch TikTok confirmed before the error, so calling again
    with the same plan and checkpoint continues where this call stopped.
    """
    counts = DeliveryCounts()
    schemas = list(plan.id_schemas)
    audience = [checkpoint.audience_id]
    phases: list[tuple[str, set[int], Iterator[pa.RecordBatch]]] = [
        ("delete", checkpoint.removed, iter_remove_batches(con, plan, checkpoint.batch_rows)),
        ("add", checkpoint.added, iter_add_batches(con, plan, checkpoint.batch_rows)),
    ]
    confirmed_since_save = 0
    failures: list[BaseException] = []
    with _CheckpointWriter(save_checkpoint, failures) as writer:

        async def run_phase(action: str, done: set[int], batches: Iterator[pa.RecordBatch]) -> None:
            nonlocal confirmed_since_save
            slots = asyncio.Semaphore(in_flight)
            tasks: list[asyncio.Task[None]] = []

            async def send_one(index: int, body: bytes, ids: int) -> None:
                nonlocal confirmed_since_save
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
                counts.requests += 1
                if action == "add":
                    counts.added_ids += ids
                else:
                    counts.removed_ids += ids
                if progress is not None:
                    progress(action, ids)
                confirmed_since_save += 1
                if confirmed_since_save >= checkpoint_every:
                    confirmed_since_save = 0
                    await writer.save(checkpoint)

            for index, batch in enumerate(batches):
                if index in done:
                    counts.batches_skipped += 1
                    continue
                await slots.acquire()
                if failures:  # stop producing batches after the first failure (a send's or a save's)
                    slots.release()
                    break
                body = batch_data_bytes(batch, audience)
                tasks.append(asyncio.create_task(send_one(index, body, _non_null_cells(batch))))
            await asyncio.gather(*tasks)
            await writer.save(checkpoint)
            confirmed_since_save = 0
            await writer.flush()
            if failures:
                raise failures[0]

        for action, done, batches in phases:
            await run_phase(action, done, batches)
    return counts


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
