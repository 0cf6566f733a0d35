"""Retries: faults injected by the emulator, and HTTP-level failures only a gateway can produce."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx2
import pytest

from ttsync.destinations.tiktok.client import (
    InvalidRequestError,
    LimiterRegistry,
    RateLimits,
    RetryableError,
    RetryPolicy,
    TikTokClient,
    UnexpectedResponseError,
)
from ttsync.emulator.embedded import EmulatorServer

FAST = RateLimits(default=1_000.0)
QUICK_RETRIES = RetryPolicy(
    max_attempts=8, max_total_seconds=30, wait_initial=0.01, wait_max=0.1, wait_jitter=0.01
)


class CountingTransport(httpx2.AsyncHTTPTransport):
    """A real loopback transport that counts the requests it sends (to check the number of attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request.url.path)
        return await super().handle_async_request(request)


def client_for(emu: EmulatorServer, **kw: Any) -> TikTokClient:
    seed = emu.seed
    kw.setdefault("rate_limits", FAST)
    kw.setdefault("retry", QUICK_RETRIES)
    return TikTokClient(
        access_token=seed.operator_token,
        app_id=seed.app_id,
        app_secret=seed.app_secret,
        base_url=emu.base_url,
        limiters=LimiterRegistry(),
        **kw,
    )


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_thirty_percent_50002_all_calls_succeed(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        audience_id = client.create_segment_audience(adv, "flaky").audience_id
        emulator.admin.set_faults(rate=0.3, codes=[50002], seed=7, paths=["segment/mapping/"])
        for n in range(30):
            client.add_segment_members([adv], [audience_id], ["EMAIL_SHA256"], [[sha(f"p{n}@example.com")]])
        stats = client.aio.stats
    emulator.admin.clear_faults()
    assert stats.failures == 0
    assert stats.fault_retries > 0  # faults really happened and were absorbed
    assert stats.requests == 31 + stats.fault_retries
    assert emulator.admin.audience_members(audience_id)["EMAIL_SHA256"] == {
        sha(f"p{n}@example.com") for n in range(30)
    }


def test_dropped_connections_are_retried_for_idempotent_calls(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        audience_id = client.create_segment_audience(adv, "drops").audience_id
        emulator.admin.set_faults(rate=0.0, codes=[50000], drop_rate=0.3, seed=3, paths=["segment/mapping/"])
        for n in range(15):
            client.add_segment_members([adv], [audience_id], ["EMAIL_SHA256"], [[sha(f"d{n}")]])
        assert client.aio.stats.fault_retries > 0
    assert len(emulator.admin.audience_members(audience_id)["EMAIL_SHA256"]) == 15


def test_ambiguous_failure_of_a_create_is_not_retried(emulator: EmulatorServer) -> None:
    # A dropped connection after sending a create: TikTok may have created the audience; retrying blindly
    # would make a duplicate (ref §7), so the client reports it after exactly one attempt.
    transport = CountingTransport()
    emulator.admin.set_faults(rate=0.0, codes=[50000], drop_rate=1.0, seed=1, paths=["segment/audience/"])
    with client_for(emulator, transport=transport) as client, pytest.raises(RetryableError) as err:
        client.create_segment_audience(emulator.seed.advertiser_ids[0], "maybe created")
    assert err.value.ambiguous is True
    assert err.value.attempts == 1
    assert len(transport.sent) == 1


def test_non_retryable_code_is_sent_exactly_once(emulator: EmulatorServer) -> None:
    transport = CountingTransport()
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator, transport=transport) as client, pytest.raises(InvalidRequestError) as err:
        client.add_segment_members([adv], ["999"], ["EMAIL_SHA256"], [[sha("x")]])
    assert err.value.attempts == 1
    assert transport.sent == ["/open_api/v1.3/segment/mapping/"]


def test_retry_budget_is_bounded_and_reported(emulator: EmulatorServer) -> None:
    transport = CountingTransport()
    policy = RetryPolicy(max_attempts=3, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0)
    emulator.admin.set_faults(rate=1.0, codes=[50000], seed=5)
    with (
        client_for(emulator, transport=transport, retry=policy) as client,
        pytest.raises(RetryableError) as err,
    ):
        client.list_custom_audiences(emulator.seed.advertiser_ids[0])
    assert err.value.code == 50000
    assert err.value.resolution_key == "tiktok_unavailable"
    assert err.value.attempts == 3
    assert "3 attempts" in str(err.value)
    assert len(transport.sent) == 3


def test_write_conflict_40202_is_retried(emulator: EmulatorServer) -> None:
    emulator.admin.set_faults(rate=0.5, codes=[40202], seed=11)
    with client_for(emulator) as client:
        for _ in range(10):
            client.list_custom_audiences(emulator.seed.advertiser_ids[0])
        assert client.aio.stats.fault_retries > 0
        assert client.aio.stats.failures == 0


# MockTransport below: the emulator answers every API request with TikTok's envelope by design (ref §1), so
# it cannot produce a gateway's HTTP 502 with an HTML body (RS saw one from nginx) or a 200 that is not JSON.
_OK = {
    "code": 0,
    "message": "OK",
    "request_id": "20260101000000ABCDEF",
    "data": {"list": [], "page_info": {}},
}


def _scripted(responses: list[httpx2.Response]) -> tuple[httpx2.MockTransport, list[int]]:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return responses[min(len(calls), len(responses)) - 1]

    return httpx2.MockTransport(handler), calls


def _gateway_client(transport: httpx2.MockTransport, **kw: Any) -> TikTokClient:
    kw.setdefault("retry", QUICK_RETRIES)
    return TikTokClient(
        access_token="t",
        app_id="1",
        base_url="http://gateway.invalid/open_api/v1.3/",
        transport=transport,
        limiters=LimiterRegistry(),
        rate_limits=FAST,
        **kw,
    )


def test_http_502_html_is_retried_then_succeeds() -> None:
    html = httpx2.Response(
        502, text="<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"}
    )
    transport, calls = _scripted([html, html, httpx2.Response(200, json=_OK)])
    with _gateway_client(transport) as client:
        result = client.list_custom_audiences("1")
    assert result.request_id == _OK["request_id"]
    assert len(calls) == 3


def test_http_503_exhausts_as_retryable() -> None:
    transport, calls = _scripted([httpx2.Response(503, text="busy")])
    policy = RetryPolicy(max_attempts=2, wait_initial=0.0, wait_jitter=0.0)
    with _gateway_client(transport, retry=policy) as client, pytest.raises(RetryableError) as err:
        client.list_custom_audiences("1")
    assert err.value.http_status == 503
    assert err.value.resolution_key == "tiktok_unavailable"
    assert err.value.attempts == 2 == len(calls)


def test_html_body_with_http_200_is_unexpected_response() -> None:
    transport, _ = _scripted([httpx2.Response(200, text="<html>maintenance</html>")])
    policy = RetryPolicy(max_attempts=1)
    with _gateway_client(transport, retry=policy) as client, pytest.raises(UnexpectedResponseError) as err:
        client.list_custom_audiences("1")
    assert err.value.retryable


def test_partial_success_20001_is_returned_and_flagged() -> None:
    # MockTransport: no source shows when TikTok answers 20001 (ref §3.4, §9), so the emulator never does.
    body = {"code": 20001, "message": "Partial OK", "request_id": "r", "data": {}}
    transport, _ = _scripted([httpx2.Response(200, content=json.dumps(body).encode())])
    with _gateway_client(transport) as client:
        result = client.track_events(
            event_source="offline",
            event_source_id="1",
            data=[{"event": "Purchase", "event_time": 1, "event_id": "a"}],
        )
    assert result.partial_success is True
