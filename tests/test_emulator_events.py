"""event/track/ and offline event sets in the emulator (ref §3, §8.6)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ttsync.emulator.embedded import EmulatorServer, RawApi


def event(event_id: str, name: str = "CompletePayment", **extra: Any) -> dict[str, Any]:
    return {
        "event": name,
        "event_time": int(time.time()),
        "event_id": event_id,
        "user": {"email": hashlib.sha256(b"a@example.com").hexdigest()},
        "properties": {"currency": "USD", "value": 12.5},
        **extra,
    }


def track(api: RawApi, source_id: str, data: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return api.post(
        "event/track/", {"event_source": "offline", "event_source_id": source_id, "data": data, **top}
    )


def test_events_are_accepted_and_visible(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    out = track(raw_api, es, [event("o-1"), event("o-2", "Purchase")], partner_name="ttsync")
    assert out["code"] == 0, out
    assert [e["event_id"] for e in emulator.admin.events(es)] == ["o-1", "o-2"]


def test_dedupe_within_48_hours_then_accepted_again(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    assert track(raw_api, es, [event("dup"), event("dup")])["code"] == 0
    assert track(raw_api, es, [event("dup")])["code"] == 0
    assert len(emulator.admin.events(es)) == 1
    stats = emulator.admin.state()["events"]
    assert (stats["received"], stats["accepted"], stats["deduplicated"]) == (3, 1, 2)
    emulator.admin.advance_clock(47 * 3600)
    track(raw_api, es, [event("dup")])
    assert len(emulator.admin.events(es)) == 1
    emulator.admin.advance_clock(2 * 3600)
    track(raw_api, es, [event("dup")])
    assert len(emulator.admin.events(es)) == 2
    # Another event name is another key.
    track(raw_api, es, [event("dup", "Contact")])
    assert len(emulator.admin.events(es)) == 3


def test_expired_dedupe_keys_are_forgotten(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    track(raw_api, es, [event("old-1"), event("old-2")])
    assert emulator.admin.state()["events"]["dedupe_keys"] == 2
    emulator.admin.advance_clock(48 * 3600 + 1)
    track(raw_api, es, [event("new-1")])
    # The two old keys left with their window; the new one stays for 48 hours.
    assert emulator.admin.state()["events"]["dedupe_keys"] == 1
    track(raw_api, es, [event("old-1")])
    assert [e["event_id"] for e in emulator.admin.events(es)] == ["old-1", "old-2", "new-1", "old-1"]


def test_test_event_code_events_are_kept_apart(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    assert track(raw_api, es, [event("t-1")], test_event_code="TEST123")["code"] == 0
    assert emulator.admin.events(es) == []
    assert [e["event_id"] for e in emulator.admin.events(es, test=True)] == ["t-1"]
    track(raw_api, es, [event("t-1")])
    assert len(emulator.admin.events(es)) == 1


def test_batch_size_limits_reject_the_whole_request(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    out = track(raw_api, es, [event(f"e{n}") for n in range(1001)])
    assert out["code"] == 40002
    assert out["message"].startswith("data:")
    assert track(raw_api, es, [])["code"] == 40002
    assert track(raw_api, es, [event(f"e{n}") for n in range(1000)])["code"] == 0
    assert len(emulator.admin.events(es)) == 1000


def test_one_bad_event_fails_the_request_naming_the_field(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    cases: list[tuple[dict[str, Any], str]] = [
        ({"event_id": 123}, "data.1.event_id: Not a valid string"),
        ({"event_time": "2024-01-01"}, "data.1.event_time: Not a valid integer"),
        ({"event_time": 1.5}, "data.1.event_time: Not a valid integer"),
        ({"event": "Bought"}, "data.1.event: Invalid event name"),
        ({"properties": {"value": "12"}}, "data.1.properties.value: Not a valid number"),
    ]
    for override, message in cases:
        bad = {**event("bad"), **override}
        out = track(raw_api, es, [event("good"), bad])
        assert out["code"] == 40002, out
        assert out["message"].startswith(message), out["message"]
    assert emulator.admin.events(es) == []


def test_raw_pii_is_refused(emulator: EmulatorServer, raw_api: RawApi) -> None:
    out = track(raw_api, emulator.seed.event_set_id, [event("p", user={"email": "a@example.com"})])
    assert out["code"] == 40062
    assert out["message"].startswith("data.0.user.email")
    assert "a@example.com" not in out["message"]


def test_every_hash_is_checked_even_when_the_batch_looks_right_as_a_whole(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    # The batch-wide check must not be fooled by hashes whose lengths or newlines add up (63 + 65 characters,
    # a newline inside a hash) nor by upper case: each of these is refused, naming the first bad hash.
    es = emulator.seed.event_set_id
    good = "a" * 64
    cases: list[tuple[list[str], str]] = [
        (["b" * 63, "c" * 65], "data.1.user.email.0"),
        ([good, "d" * 32 + "\n" + "d" * 31], "data.1.user.email.1"),
        (["E" * 64], "data.1.user.email.0"),
        ([good, "ü" * 64], "data.1.user.email.1"),
    ]
    for emails, path in cases:
        out = track(raw_api, es, [event("good", user={"email": good}), event("bad", user={"email": emails})])
        assert out["code"] == 40062, out
        assert out["message"].startswith(path), out["message"]
    assert emulator.admin.events(es) == []


def test_event_source_checks(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    out = raw_api.post(
        "event/track/", {"event_source": "offline", "event_source_id": int(es), "data": [event("x")]}
    )
    assert (out["code"], out["message"]) == (40002, "Invalid value for event_source_id: not a valid string.")
    pixel = emulator.admin.create_event_set(emulator.seed.advertiser_ids[0], kind="web")
    assert track(raw_api, pixel, [event("x")])["code"] == 40002  # a pixel is not an offline event set
    out = raw_api.post(
        "event/track/", {"event_source": "web", "event_source_id": pixel, "data": [event("x", "ViewContent")]}
    )
    assert out["code"] == 0
    out = raw_api.post("event/track/", {"event_source": "store", "event_source_id": es, "data": [event("x")]})
    assert out["message"].startswith("event_source:")


def test_crm_sources_accept_custom_event_names(emulator: EmulatorServer, raw_api: RawApi) -> None:
    crm = emulator.admin.create_event_set(emulator.seed.advertiser_ids[0], kind="crm")
    out = raw_api.post(
        "event/track/", {"event_source": "crm", "event_source_id": crm, "data": [event("c", "LeadQualified")]}
    )
    assert out["code"] == 0


def test_analyst_cannot_send_events(emulator: EmulatorServer, analyst_api: RawApi) -> None:
    assert track(analyst_api, emulator.seed.event_set_id, [event("a")])["code"] == 40001


def test_offline_event_sets_create_and_get(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    out = raw_api.post("offline/create/", {"advertiser_id": adv, "name": "Stores", "description": "POS"})
    new_id = out["data"]["event_set_id"]
    all_sets = raw_api.get("offline/get/", advertiser_id=adv)["data"]["event_set_list"]
    assert {s["event_set_id"] for s in all_sets} == {emulator.seed.event_set_id, new_id}
    by_id = raw_api.get("offline/get/", advertiser_id=adv, event_set_ids=[new_id])["data"]["event_set_list"]
    assert [(s["name"], s["description"]) for s in by_id] == [("Stores", "POS")]
    by_name = raw_api.get("offline/get/", advertiser_id=adv, name="Stores")["data"]["event_set_list"]
    assert [s["event_set_id"] for s in by_name] == [new_id]
    assert track(raw_api, new_id, [event("n")])["code"] == 0


def test_bodies_the_fast_parser_refuses_are_read_as_before(emulator: EmulatorServer, raw_api: RawApi) -> None:
    """The emulator parses bodies with orjson and falls back to `json` for what orjson refuses (integers beyond
    64 bits, NaN): those requests are answered exactly as before."""
    es = emulator.seed.event_set_id
    huge = event("huge-time", event_time=2**70)
    nan = event("nan-value", properties={"currency": "USD", "value": float("nan")})
    assert track(raw_api, es, [huge, nan])["code"] == 0
    assert emulator.admin.state()["events"]["accepted"] == 2
