"""Wire fidelity of the emulator (ref §1): envelope, 404s, auth errors, IDs as strings, rate limits, faults."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable

import httpx2
import pytest

from ttsync.emulator.embedded import EmulatorServer, RawApi

ApiFactory = Callable[[str | None], RawApi]

REQUEST_ID = re.compile(r"^\d{14}[0-9A-F]{16,}$")


def test_success_envelope_has_code_message_request_id_data(emulator: EmulatorServer, raw_api: RawApi) -> None:
    seed = emulator.seed
    out = raw_api.get("oauth2/advertiser/get/", app_id=seed.app_id, secret=seed.app_secret)
    assert set(out) == {"code", "message", "request_id", "data"}
    assert out["code"] == 0
    assert out["message"] == "OK"
    assert REQUEST_ID.match(out["request_id"])
    assert [a["advertiser_id"] for a in out["data"]["list"]] == seed.advertiser_ids


def test_seed_ids_are_19_digit_strings_and_deterministic(emulator: EmulatorServer) -> None:
    first = emulator.seed
    assert all(re.fullmatch(r"\d{19}", i) for i in [first.app_id, *first.advertiser_ids, first.event_set_id])
    assert emulator.admin.reset("demo") == first


@pytest.mark.parametrize("path", ["oauth2/advertiser/get", "no/such/path/", "segment/mappings/"])
def test_unknown_path_or_missing_slash_is_plain_404(emulator: EmulatorServer, path: str) -> None:
    response = httpx2.get(emulator.base_url + path, headers={"Access-Token": emulator.seed.operator_token})
    assert response.status_code == 404
    assert response.text == "404 page not found"
    assert response.headers["content-type"].startswith("text/plain")


def test_admin_api_is_not_under_open_api(emulator: EmulatorServer) -> None:
    auth = {"Authorization": f"Bearer {emulator.seed.admin_token}"}
    assert httpx2.get(emulator.base_url + "_emulator/state", headers=auth).status_code == 404
    assert httpx2.get(emulator.root_url + "/_emulator/state", headers=auth).status_code == 200


def test_missing_token_is_40104_with_observed_message(emulator: EmulatorServer, api_with: ApiFactory) -> None:
    out = api_with(None).get("dmp/custom_audience/list/", advertiser_id=emulator.seed.advertiser_ids[0])
    assert out["code"] == 40104
    assert out["message"] == "Access token is null, you should set it in http header with key Access-Token."
    assert out["data"] == {}


def test_unknown_and_revoked_tokens_are_40105(emulator: EmulatorServer, api_with: ApiFactory) -> None:
    adv = emulator.seed.advertiser_ids[0]
    assert api_with("f" * 40).get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 40105
    emulator.admin.revoke_token(emulator.seed.operator_token)
    out = api_with(emulator.seed.operator_token).get("dmp/custom_audience/list/", advertiser_id=adv)
    assert out["code"] == 40105
    assert emulator.seed.operator_token not in out["message"]


def test_expired_token_is_40102(emulator: EmulatorServer, api_with: ApiFactory) -> None:
    adv = emulator.seed.advertiser_ids
    token = emulator.admin.create_token("temp", adv, "Operator", expires_in=60)["access_token"]
    api = api_with(token)
    assert api.get("dmp/custom_audience/list/", advertiser_id=adv[0])["code"] == 0
    emulator.admin.advance_clock(61)
    assert api.get("dmp/custom_audience/list/", advertiser_id=adv[0])["code"] == 40102


def test_number_where_string_expected_names_the_field(emulator: EmulatorServer, raw_api: RawApi) -> None:
    out = raw_api.post(
        "segment/audience/",
        {"advertiser_id": int(emulator.seed.advertiser_ids[0]), "custom_audience_name": "x"},
    )
    assert out["code"] == 40002
    assert out["message"] == "advertiser_id: Not a valid string"


def test_unknown_advertiser_is_40300_and_unreachable_is_40001(
    emulator: EmulatorServer, api_with: ApiFactory, raw_api: RawApi
) -> None:
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id="7000000000000000001")["code"] == 40300
    other = emulator.admin.create_token("solo", [emulator.seed.advertiser_ids[1]], "Operator")["access_token"]
    out = api_with(other).get("dmp/custom_audience/list/", advertiser_id=emulator.seed.advertiser_ids[0])
    assert out["code"] == 40001
    assert "/dmp/custom_audience/list/:GET" in out["message"]


def test_deleted_and_unapproved_advertisers(emulator: EmulatorServer, raw_api: RawApi) -> None:
    first, second = emulator.seed.advertiser_ids
    emulator.admin.delete_advertiser(first)
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=first)["code"] == 40001
    emulator.admin.unapprove_advertiser(second)
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=second)["code"] == 0
    out = raw_api.post("segment/audience/", {"advertiser_id": second, "custom_audience_name": "x"})
    assert out["code"] == 40001
    assert "not approved" in out["message"]


def test_get_array_params_must_be_json_encoded(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    response = raw_api.http.get(
        "dmp/custom_audience/get/", params={"advertiser_id": adv, "custom_audience_ids": "123"}
    )
    assert response.json()["code"] == 40002
    assert response.json()["message"].startswith("custom_audience_ids:")


def test_rate_limit_answers_http_200_code_40100(emulator: EmulatorServer, raw_api: RawApi) -> None:
    seed = emulator.seed
    emulator.admin.set_rate_limit("default", qps=3)
    codes = [
        raw_api.get("dmp/custom_audience/list/", advertiser_id=seed.advertiser_ids[0])["code"]
        for _ in range(6)
    ]
    assert codes[:3] == [0, 0, 0]
    assert 40100 in codes[3:]
    out = raw_api.get("dmp/custom_audience/list/", advertiser_id=seed.advertiser_ids[0])
    if out["code"] == 40100:
        assert f"App {seed.app_id} reaches the QPS limit 3" in out["message"]


def test_paced_client_at_the_limit_never_sees_40100(emulator: EmulatorServer, raw_api: RawApi) -> None:
    emulator.admin.set_rate_limit("default", qps=20)
    adv = emulator.seed.advertiser_ids[0]
    codes = []
    for _ in range(50):  # 2.5 s at 20 requests per second
        codes.append(raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"])
        # 1/20 s after each answer, so the emulator sees the requests at least 1/20 s apart however late a
        # loaded machine schedules its thread (a fixed send timetable lets a late request and a punctual one
        # 20 requests later land within the same second).
        time.sleep(1 / 20)
    assert codes == [0] * 50


def test_requests_count_against_the_limit_in_arrival_order(emulator: EmulatorServer, raw_api: RawApi) -> None:
    # A large body still uploading when later, smaller requests finish: it counts as it arrived (first), not
    # when its body is complete, so the third request is the one over a limit of 2. (A per-minute limit, so
    # the test may wait for the first request to arrive; the per-second one is counted the same way.)
    seed = emulator.seed
    adv = seed.advertiser_ids[0]
    audience = raw_api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "Order"})
    emulator.admin.advance_clock(3 * 3600)  # past the new audience's processing delay
    emulator.admin.set_rate_limit("segment", qps=None, qpm=2)  # also forgets the create above

    def mapping(hashes: range) -> bytes:
        rows = [[{"id": f"{i:064x}", "audience_ids": [audience["data"]["audience_id"]]}] for i in hashes]
        body = {"advertiser_ids": [adv], "action": "add", "id_schema": ["EMAIL_SHA256"], "batch_data": rows}
        return json.dumps(body).encode()

    slow = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    body = mapping(range(1, 2001))
    slow.putrequest("POST", "/open_api/v1.3/segment/mapping/")
    for name, value in (
        ("Access-Token", seed.operator_token),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ):
        slow.putheader(name, value)
    slow.endheaders(body[:100])
    time.sleep(1.0)  # the emulator has read the first request's headers: it has arrived
    codes = [
        raw_api.post("segment/mapping/", json.loads(mapping(range(n, n + 1))))["code"] for n in (5000, 6000)
    ]
    slow.send(body[100:])
    first = json.loads(slow.getresponse().read())
    slow.close()
    assert (first["code"], codes) == (0, [0, 40100])


def test_groups_are_limited_separately(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    emulator.admin.set_rate_limit("default", qps=1)
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 0
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 40100
    out = raw_api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "fine"})
    assert out["code"] == 0  # `segment` group: 10,000 QPS


def test_daily_limit_resets_on_the_next_utc_day(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    emulator.admin.set_rate_limit("default", qps=100, qpm=100, qpd=2)
    assert [raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] for _ in range(3)] == [
        0,
        0,
        40100,
    ]
    emulator.admin.advance_clock(86_400)
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 0


def _fault_codes(emulator: EmulatorServer, raw_api: RawApi) -> list[int]:
    emulator.admin.set_faults(
        rate=0.5, codes=[50000, 50002, 40202], seed=7, paths=["dmp/custom_audience/list/"]
    )
    adv = emulator.seed.advertiser_ids[0]
    return [raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] for _ in range(30)]


def test_faults_are_deterministic_under_a_seed(emulator: EmulatorServer, raw_api: RawApi) -> None:
    emulator.admin.set_rate_limit("default", qps=1000, qpm=100_000)
    first = _fault_codes(emulator, raw_api)
    second = _fault_codes(emulator, raw_api)
    assert first == second
    assert {c for c in first if c} <= {50000, 50002, 40202}
    assert 5 <= sum(1 for c in first if c) <= 25
    # Paths outside the filter are untouched.
    out = raw_api.get("oauth2/advertiser/get/", app_id=emulator.seed.app_id, secret=emulator.seed.app_secret)
    assert out["code"] == 0
    emulator.admin.clear_faults()
    assert (
        raw_api.get("dmp/custom_audience/list/", advertiser_id=emulator.seed.advertiser_ids[0])["code"] == 0
    )


def test_fault_messages_look_like_tiktok(emulator: EmulatorServer, raw_api: RawApi) -> None:
    emulator.admin.set_faults(rate=1.0, codes=[50002])
    out = raw_api.get("dmp/custom_audience/list/", advertiser_id=emulator.seed.advertiser_ids[0])
    assert out["code"] == 50002
    assert out["message"].startswith("Error processing request on TikTok side")


def test_dropped_connection_and_latency(emulator: EmulatorServer) -> None:
    emulator.admin.set_faults(rate=0.0, codes=[], drop_rate=1.0, paths=["dmp/custom_audience/list/"])
    with httpx2.Client(headers={"Access-Token": emulator.seed.operator_token}) as http:
        with pytest.raises(httpx2.TransportError):
            http.get(emulator.base_url + "dmp/custom_audience/list/", params={"advertiser_id": "1"})
        emulator.admin.set_faults(rate=0.0, codes=[], latency_ms=300)
        start = time.monotonic()
        response = http.get(
            emulator.base_url + "dmp/custom_audience/list/",
            params={"advertiser_id": emulator.seed.advertiser_ids[0]},
        )
        assert response.json()["code"] == 0
        assert time.monotonic() - start >= 0.3


def test_gateway_fault_is_http_502_html(emulator: EmulatorServer) -> None:
    emulator.admin.set_faults(rate=1.0, codes=[502])
    response = httpx2.get(emulator.base_url + "dmp/custom_audience/list/", headers={"Access-Token": "x"})
    assert response.status_code == 502
    assert "<html>" in response.text
