"""Delivering offline events to the emulator over real HTTP: send once, skip on re-run, bisect rejects."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.destinations.tiktok.client import (
    AsyncTikTokClient,
    AuthenticationError,
    InvalidRequestError,
    LimiterRegistry,
    RetryPolicy,
)
from ttsync.destinations.tiktok.events import EventSender, EventSetNotFoundError, deliver_events
from ttsync.destinations.tiktok.events.deliver import _HeapTrim
from ttsync.destinations.tiktok.settings import ResolvedOfflineEventsSettings
from ttsync.emulator.embedded import EmulatorServer
from ttsync.events.ledger import Ledger
from ttsync.events.outcomes import EventTotals
from ttsync.events.payload import GroupedEvent, ReadyEvents

RECENT = datetime.now(UTC) - timedelta(days=1)


def _rows(n: int, *, items_per_event: int = 1, start: int = 0) -> pa.RecordBatch:
    rows = []
    for i in range(start, start + n):
        for j in range(items_per_event):
            rows.append(
                {
                    "row_key": f"r{i}-{j}",
                    "email": f"user{i}@example.com",
                    "event": "CompletePayment",
                    "event_id": f"order-{i}",
                    "timestamp": (RECENT + timedelta(seconds=i)).isoformat(),
                    "currency": "USD",
                    "content_id": f"sku-{j}",
                    "price": 2.0,
                    "quantity": 1,
                    "value": 2.0,
                }
            )
    return pa.RecordBatch.from_pylist(rows)


def _client(emu: EmulatorServer, transport: httpx2.AsyncBaseTransport | None = None) -> AsyncTikTokClient:
    return AsyncTikTokClient(
        access_token=emu.seed.operator_token,
        base_url=emu.base_url,
        transport=transport,
        limiters=LimiterRegistry(),
        retry=RetryPolicy(max_attempts=2, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0),
    )


def _settings(emu: EmulatorServer, **overrides: Any) -> ResolvedOfflineEventsSettings:
    values: dict[str, Any] = {
        "advertiser_id": emu.seed.advertiser_ids[0],
        "event_set_id": emu.seed.event_set_id,
    }
    values.update(overrides)
    return ResolvedOfflineEventsSettings(**values)


def _deliver(
    emu: EmulatorServer, batches: Iterable[pa.RecordBatch], tmp_path: Path, run: str, **kw: Any
) -> Any:
    settings = kw.pop("settings", None) or _settings(emu)

    async def go() -> Any:
        async with _client(emu, kw.pop("transport", None)) as client:
            with Ledger.open(tmp_path / "state") as ledger:
                return await deliver_events(
                    client,
                    batches,
                    settings=settings,
                    key_column="row_key",
                    run_dir=tmp_path / run,
                    ledger=ledger,
                    **kw,
                )

    return asyncio.run(go())


def test_events_are_sent_once_with_contents_and_skipped_on_rerun(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    seen: list[EventTotals] = []
    batches = [_rows(1_200, items_per_event=2), _rows(300, items_per_event=2, start=1_200)]
    first = _deliver(emulator, batches, tmp_path, "run1", progress=lambda t: seen.append(t))
    assert first.totals.sent == 1_500
    assert first.totals.rows == 3_000
    assert first.totals.requests == 2  # 1,000 + 500
    assert seen
    assert seen[-1].sent == 1_500

    received = emulator.admin.events(emulator.seed.event_set_id)
    assert len(received) == 1_500
    one = next(e for e in received if e["event_id"] == "order-7")
    assert one["user"]["email"] == [hashlib.sha256(b"user7@example.com").hexdigest()]
    assert isinstance(one["event_time"], int)
    assert one["properties"]["value"] == 4.0
    assert [c["content_id"] for c in one["properties"]["contents"]] == ["sku-0", "sku-1"]

    outcomes = pq.read_table(first.outcomes_path).to_pylist()
    assert len(outcomes) == 3_000
    assert {o["outcome"] for o in outcomes} == {"sent"}
    assert json.loads(first.totals_path.read_text())["sent"] == 1_500

    second = _deliver(emulator, batches, tmp_path, "run2")
    assert second.totals.sent == 0
    assert second.totals.duplicate_skipped == 1_500
    assert second.totals.requests == 0
    assert emulator.admin.state()["events"]["received"] == 1_500


def test_only_new_events_are_sent_after_the_query_grows(emulator: EmulatorServer, tmp_path: Path) -> None:
    _deliver(emulator, [_rows(100)], tmp_path, "run1")
    grown = _deliver(emulator, [_rows(150)], tmp_path, "run2")
    assert (grown.totals.sent, grown.totals.duplicate_skipped) == (50, 100)
    assert emulator.admin.state()["events"]["received"] == 150


def test_missing_event_set_stops_before_sending(emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = _settings(emulator, event_set_id="1234567890")
    with pytest.raises(EventSetNotFoundError) as info:
        _deliver(emulator, [_rows(3)], tmp_path, "run", settings=settings)
    assert info.value.resolution_key == "event_set_not_found"
    assert "1234567890" in str(info.value)
    assert emulator.admin.state()["events"]["received"] == 0


def test_revoked_token_stops_with_the_typed_error_and_records_nothing(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.revoke_token(emulator.seed.operator_token)
    with pytest.raises(AuthenticationError):
        _deliver(emulator, [_rows(3)], tmp_path, "run")
    with Ledger.open(tmp_path / "state") as ledger:
        assert ledger.count() == 0


def test_test_event_code_is_sent_apart_and_does_not_block_real_sends(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    test_settings = _settings(emulator, test_event_code="TEST42")
    _deliver(emulator, [_rows(5)], tmp_path, "run1", settings=test_settings)
    assert len(emulator.admin.events(emulator.seed.event_set_id, test=True)) == 5
    real = _deliver(emulator, [_rows(5)], tmp_path, "run2")
    assert real.totals.sent == 5
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 5


def _events(n: int, bad: set[int]) -> list[GroupedEvent]:
    events = []
    for i in range(n):
        email = "not-hashed@example.com" if i in bad else hashlib.sha256(f"u{i}".encode()).hexdigest()
        payload = {
            "event": "Purchase",
            "event_id": f"e{i}",
            "event_time": 1_700_000_000 + i,
            "user": {"email": [email]},
        }
        events.append(GroupedEvent.from_payload([f"row{i}"], payload))
    return events


def _isolate(emu: EmulatorServer, tmp_path: Path, events: list[GroupedEvent], transport: Any = None) -> Any:
    async def go() -> Any:
        async with _client(emu, transport) as client:
            with Ledger.open(tmp_path / "state") as ledger:
                sender = EventSender(client, _settings(emu), ledger, run_id="t")
                confirmed, rejected = await sender.send(ReadyEvents.of(events))
                return confirmed, rejected, sender.totals, ledger.count()

    return asyncio.run(go())


def test_tiktok_naming_the_bad_event_drops_it_and_sends_the_rest(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The emulator answers 40062 "data.N.user.email.0: must be SHA-256 hashed" for the first bad event.
    confirmed, rejected, totals, recorded = _isolate(emulator, tmp_path, _events(40, {3, 17}))
    assert len(confirmed) == 38
    assert sorted(e.event_id for e, _ in rejected) == ["e17", "e3"]
    assert all("data." in message and "@" not in message for _, message in rejected)
    assert recorded == 38
    assert totals.rejected == {"rejected_by_tiktok": 2}
    # The batch; the rest without e3 (fails on e17); the rest without e17 (goes, so e17 is proven bad); e3
    # alone (an index is a hint, not proof: the rest held another bad event, so e3 is checked by itself).
    assert totals.requests == 4
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 38


def test_one_bad_event_named_by_index_costs_two_requests(emulator: EmulatorServer, tmp_path: Path) -> None:
    confirmed, rejected, totals, _ = _isolate(emulator, tmp_path, _events(40, {9}))
    assert [e.event_id for e, _ in rejected] == ["e9"]
    assert len(confirmed) == 39
    assert totals.requests == 2


class _WrongIndexTransport(httpx2.AsyncBaseTransport):
    """Real HTTP to the emulator, with the event index in error messages moved one up (a 1-based `Batch.N`,
    say): the client must not reject a good event on the strength of an index alone."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        await response.aread()
        body = response.json()
        message = str(body.get("message", ""))
        shifted = re.sub(r"data\.(\d+)", lambda m: f"data.{int(m.group(1)) + 1}", message)
        return httpx2.Response(response.status_code, json={**body, "message": shifted})

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_a_wrong_index_rejects_only_the_bad_event(emulator: EmulatorServer, tmp_path: Path) -> None:
    confirmed, rejected, _, recorded = _isolate(emulator, tmp_path, _events(20, {4}), _WrongIndexTransport())
    assert [e.event_id for e, _ in rejected] == ["e4"]
    assert len(confirmed) == recorded == 19
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 19


class _NoIndexTransport(httpx2.AsyncBaseTransport):
    """Real HTTP to the emulator, with the event index removed from error messages.

    The emulator always names `data.N`; TikTok's wording is not guaranteed to (ref §3.4), so this rewrites the
    message to exercise bisection. Everything else is the emulator's real answer.
    """

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        if body.get("code"):
            body["message"] = re.sub(r"data\.\d+\.", "", body["message"])
        return httpx2.Response(response.status_code, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_bisection_isolates_bad_events_without_an_index(emulator: EmulatorServer, tmp_path: Path) -> None:
    confirmed, rejected, totals, recorded = _isolate(
        emulator, tmp_path, _events(64, {0, 40, 41}), _NoIndexTransport()
    )
    assert len(confirmed) == 61
    assert sorted(e.event_id for e, _ in rejected) == ["e0", "e40", "e41"]
    assert recorded == 61
    assert totals.rejected == {"rejected_by_tiktok": 3}
    assert 3 < totals.requests < 64  # bisection, not one request per event
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 61


def test_rejected_rows_are_in_the_outcome_file(emulator: EmulatorServer, tmp_path: Path) -> None:
    batch = _rows(10)
    rows = batch.to_pylist()
    rows[4]["currency"] = "???"
    result = _deliver(emulator, [pa.RecordBatch.from_pylist(rows)], tmp_path, "run")
    assert result.totals.sent == 9
    outcomes = {
        o["row_key"]: (o["outcome"], o["reason"]) for o in pq.read_table(result.outcomes_path).to_pylist()
    }
    assert outcomes["r4-0"] == ("rejected", "invalid_currency")
    assert outcomes["r5-0"] == ("sent", None)


@pytest.fixture(autouse=True)
def _no_leftover_stage(tmp_path: Path) -> Iterator[None]:
    yield
    assert not list(tmp_path.glob("*/stage"))


@pytest.mark.parametrize(
    ("variant", "max_requests"),
    [
        (None, 2),  # `data.N`: the batch, then the rest
        ("error-batch-index", 2),  # `Batch.N`: the same
        ("error-field-only", 1 + 2 * 6),  # no index: bisection, two requests per level over 40 events
    ],
)
def test_one_bad_event_is_found_under_every_message_format(
    emulator: EmulatorServer, tmp_path: Path, variant: str | None, max_requests: int
) -> None:
    if variant:
        emulator.admin.set_variants([variant])
    confirmed, rejected, totals, recorded = _isolate(emulator, tmp_path, _events(40, {23}))
    assert [e.event_id for e, _ in rejected] == ["e23"]
    assert len(confirmed) == recorded == 39
    assert totals.requests <= max_requests
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 39


def test_partner_name_is_sent_only_when_configured(emulator: EmulatorServer, tmp_path: Path) -> None:
    """TikTok may refuse unknown partner names with 40063 (ref §9): by default none is sent."""
    emulator.admin.set_variants(["partner-name-registered"], partner_names=["Acme"])
    plain = _deliver(emulator, [_rows(3)], tmp_path, "run1")
    assert plain.totals.sent == 3
    named = _deliver(
        emulator, [_rows(3, start=3)], tmp_path, "run2", settings=_settings(emulator, partner_name="Acme")
    )
    assert named.totals.sent == 3
    with pytest.raises(InvalidRequestError) as info:
        _deliver(
            emulator,
            [_rows(3, start=6)],
            tmp_path,
            "run3",
            settings=_settings(emulator, partner_name="Other"),
        )
    assert info.value.code == 40063
    assert len(emulator.admin.events(emulator.seed.event_set_id)) == 6


def test_sending_starts_before_the_query_is_read_to_the_end(emulator: EmulatorServer, tmp_path: Path) -> None:
    """Events are grouped and sent chunk by chunk: TikTok confirms the first batch while rows still arrive."""
    read = 0
    read_at_first_confirmation: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal read
        for start in range(0, 10_000, 500):
            read += 1
            yield _rows(500, start=start)

    def progress(totals: EventTotals) -> None:
        if not read_at_first_confirmation:
            read_at_first_confirmation.append(read)

    result = _deliver(emulator, batches(), tmp_path, "run", progress=progress)
    assert result.totals.sent == 10_000
    assert read_at_first_confirmation[0] < 20


def test_arrow_uses_the_system_allocator_during_a_delivery_only(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A delivery's Arrow buffers come from malloc (mimalloc kept ~110 MiB more resident, bench/events.py),
    and the process's default pool is restored afterwards, also when the delivery fails."""
    before = pa.default_memory_pool().backend_name
    during: list[str] = []

    def batches() -> Iterator[pa.RecordBatch]:
        during.append(pa.default_memory_pool().backend_name)
        yield _rows(10)

    result = _deliver(emulator, batches(), tmp_path, "run")
    assert result.totals.sent == 10
    assert during == ["system"]
    assert pa.default_memory_pool().backend_name == before

    def failing() -> Iterator[pa.RecordBatch]:
        yield _rows(10)
        raise RuntimeError("warehouse went away")

    with pytest.raises(RuntimeError):
        _deliver(emulator, failing(), tmp_path, "run2")
    assert pa.default_memory_pool().backend_name == before


def test_overlapping_deliveries_keep_the_system_allocator_until_the_last_one_ends(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Arrow's pool is process-wide: a delivery that started first and ends first must not hand the pool back
    while another delivery of the process still runs (each runs its own event loop in its own thread here)."""
    before = pa.default_memory_pool().backend_name
    first_started, second_started, first_done = threading.Event(), threading.Event(), threading.Event()
    seen_by_second: list[str] = []

    def first_batches() -> Iterator[pa.RecordBatch]:
        first_started.set()
        yield _rows(10)
        assert second_started.wait(timeout=30)

    def second_batches() -> Iterator[pa.RecordBatch]:
        second_started.set()
        yield _rows(10, start=100)
        assert first_done.wait(timeout=30)
        seen_by_second.append(pa.default_memory_pool().backend_name)
        yield _rows(10, start=200)

    def first() -> None:
        try:
            assert _deliver(emulator, first_batches(), tmp_path / "a", "run").totals.sent == 10
        finally:
            first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert first_started.wait(timeout=30)  # the first delivery switched the pool before the second starts
        assert _deliver(emulator, second_batches(), tmp_path / "b", "run").totals.sent == 20
    finally:
        thread.join(timeout=60)
    assert seen_by_second == ["system"]
    assert pa.default_memory_pool().backend_name == before


@pytest.mark.skipif(
    not Path("/proc/self/statm").exists(), reason="resident memory is read from /proc (Linux)"
)
def test_the_heap_is_trimmed_only_over_the_budget_and_not_every_chunk() -> None:
    trim = _HeapTrim()
    resident = trim.resident()
    assert resident is not None
    trim.BUDGET = resident + 2**30  # far over this process: never trimmed
    assert [trim.after_chunk() for _ in range(3)] == [False, False, False]
    trim.BUDGET = 0  # always over: trimmed once every EVERY chunks
    expected = ([True] + [False] * (_HeapTrim.EVERY - 1)) * 2
    assert [trim.after_chunk() for _ in range(2 * _HeapTrim.EVERY)] == expected


def test_every_chunk_is_grouped_in_one_worker_thread_that_ends_with_the_delivery(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """One grouping thread, not whichever thread of the event loop's pool is idle: glibc gives each thread
    that allocates its own heap, and each heap kept a chunk's worth of free memory resident (bench/events.py)."""
    from ttsync.destinations.tiktok.events import EventOptions
    from ttsync.destinations.tiktok.events.deliver import deliver_staged
    from ttsync.destinations.tiktok.events.source import QueryEvents

    threads: list[str] = []

    class Recorded(QueryEvents):
        def group(self, chunk: pa.RecordBatch) -> pa.RecordBatch | None:
            threads.append(threading.current_thread().name)
            return super().group(chunk)

    settings = _settings(emulator)
    batches = [_rows(300, start=start) for start in range(0, 3_000, 300)]

    async def go() -> Any:
        async with _client(emulator) as client:
            with Ledger.open(tmp_path / "state") as ledger:
                events = Recorded(batches, settings, "row_key", EventOptions(), None)
                return await deliver_staged(
                    client, events, settings=settings, run_dir=tmp_path / "run", ledger=ledger, batch_size=100
                )

    result = asyncio.run(go())
    assert result.totals.sent == 3_000
    assert len(threads) == 10
    assert len(set(threads)) == 1
    assert threads[0].startswith("ttsync-events-grouping")
    assert not [t for t in threading.enumerate() if t.name.startswith("ttsync-events-grouping")]
