"""`AsyncTikTokClient.track_events_json`: a pre-serialized `data` array posted to the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from ttsync.destinations.tiktok.client import (
    AsyncTikTokClient,
    ClientValidationError,
    InvalidRequestError,
    LimiterRegistry,
    RetryPolicy,
)
from ttsync.emulator.embedded import EmulatorServer

T = TypeVar("T")


def _event(i: int, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "CompletePayment",
        "event_id": f"order-{i}",
        "event_time": 1_700_000_000 + i,
        "user": {"email": [hashlib.sha256(f"user{i}@example.com".encode()).hexdigest()]},
        "properties": {"currency": "USD", "value": 2.5, "contents": [{"content_id": "sku-1", "quantity": 1}]},
    }
    event.update(overrides)
    return event


def _run(emu: EmulatorServer, call: Callable[[AsyncTikTokClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with AsyncTikTokClient(
            access_token=emu.seed.operator_token,
            base_url=emu.base_url,
            limiters=LimiterRegistry(),
            retry=RetryPolicy(max_attempts=2, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0),
        ) as client:
            return await call(client)

    return asyncio.run(go())


def _send(emu: EmulatorServer, events: list[dict[str, Any]], *, as_bytes: bool = False, **kw: Any) -> Any:
    text = json.dumps(events, ensure_ascii=False)
    return _run(
        emu,
        lambda client: client.track_events_json(
            event_source="offline",
            event_source_id=emu.seed.event_set_id,
            data_json=text.encode() if as_bytes else text,
            partner_name="ttsync",
            deduplicable=True,
            **kw,
        ),
    )


@pytest.mark.parametrize("as_bytes", [False, True])
def test_events_arrive_as_sent(emulator: EmulatorServer, as_bytes: bool) -> None:
    events = [_event(i) for i in range(3)]
    events[1]["properties"] = {"content_type": "product", "description": "Crème brûlée"}
    _send(emulator, events, as_bytes=as_bytes)
    received = emulator.admin.events(emulator.seed.event_set_id)
    assert sorted(received, key=lambda e: e["event_id"]) == events
    assert emulator.admin.state()["events"]["accepted"] == 3


def test_test_event_code_is_a_top_level_field(emulator: EmulatorServer) -> None:
    _send(emulator, [_event(1)], test_event_code="TEST99")
    assert len(emulator.admin.events(emulator.seed.event_set_id, test=True)) == 1
    assert emulator.admin.events(emulator.seed.event_set_id) == []


@pytest.mark.parametrize(
    ("index", "bad", "code", "path"),
    [
        (2, {"user": {"email": ["Not-Hashed@example.com"]}}, 40062, "data.2.user.email.0"),
        (1, {"event_time": "yesterday"}, 40002, "data.1.event_time"),
        (4, {"event": "NotAnEvent"}, 40002, "data.4.event"),
        (0, {"properties": {"value": "ten"}}, 40002, "data.0.properties.value"),
    ],
)
def test_the_first_bad_event_is_named(
    emulator: EmulatorServer, index: int, bad: dict[str, Any], code: int, path: str
) -> None:
    events = [_event(i) for i in range(5)]
    events[index] = _event(index, **bad)
    with pytest.raises(InvalidRequestError) as info:
        _send(emulator, events)
    assert info.value.code == code
    assert path in info.value.message
    assert emulator.admin.state()["events"]["received"] == 0  # the whole request was refused


def test_a_hash_with_a_newline_inside_is_refused(emulator: EmulatorServer) -> None:
    # Two valid hashes joined by a newline are one invalid value, not two valid ones.
    digest = hashlib.sha256(b"x").hexdigest()
    events = [_event(0, user={"email": [f"{digest}\n{digest}"]})]
    with pytest.raises(InvalidRequestError) as info:
        _send(emulator, events)
    assert info.value.code == 40062


@pytest.mark.parametrize(
    "data_json", ["", "{}", "[]", '{"event": "Purchase"}', b"", b" [] ", b'{"event": "x"}']
)
def test_a_body_that_is_not_an_array_of_events_is_not_sent(
    emulator: EmulatorServer, data_json: str | bytes
) -> None:
    with pytest.raises(ClientValidationError):
        _run(
            emulator,
            lambda client: client.track_events_json(
                event_source="offline", event_source_id=emulator.seed.event_set_id, data_json=data_json
            ),
        )
    assert emulator.admin.state()["events"]["received"] == 0


def test_request_fields_are_still_validated(emulator: EmulatorServer) -> None:
    with pytest.raises(ClientValidationError):
        _run(
            emulator,
            lambda client: client.track_events_json(
                event_source="billboard",  # type: ignore[arg-type]
                event_source_id=emulator.seed.event_set_id,
                data_json=json.dumps([_event(1)]),
            ),
        )
