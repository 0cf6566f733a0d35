"""Where the emulator follows sourced TikTok behaviour (ref §9) and its named variants where sources disagree."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx2
import pytest

from test_emulator_audiences import mapping, new_audience, sha, upload
from ttsync.emulator.embedded import EmulatorServer, RawApi
from ttsync.emulator.variants import VARIANTS, UnknownVariantError, parse_variants


def _event(name: str = "CompletePayment", event_id: str = "e-1", **extra: Any) -> dict[str, Any]:
    return {"event": name, "event_time": int(time.time()), "event_id": event_id, **extra}


def _track(
    api: RawApi, source: str, source_id: str, data: list[dict[str, Any]], **top: Any
) -> dict[str, Any]:
    return api.post(
        "event/track/", {"event_source": source, "event_source_id": source_id, "data": data, **top}
    )


def _details(api: RawApi, adv: str, audience_id: str) -> dict[str, Any]:
    out = api.get("dmp/custom_audience/get/", advertiser_id=adv, custom_audience_ids=f'["{audience_id}"]')
    assert out["code"] == 0, out
    return dict(out["data"]["list"][0]["audience_details"])


# -- sourced behaviour --------------------------------------------------------------------------------------


def test_empty_partner_audience_reads_invalid_until_members_arrive(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    emulator.admin.advance_clock(86_400)  # a day later, as in the captured response (ref §9)
    details = _details(raw_api, adv, aud)
    assert (details["is_valid"], details["cover_num"]) == (False, 0)
    out = raw_api.post(
        "segment/mapping/",
        mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("a@x.com"), "audience_ids": [aud]}]]),
    )
    assert out["code"] == 0, out
    details = _details(raw_api, adv, aud)
    assert (details["is_valid"], details["cover_num"]) == (True, 1)


def test_create_refuses_maid_calculate_types_and_accepts_first(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    adv = emulator.seed.advertiser_ids[0]
    path = upload(emulator, adv, [sha(str(n)) for n in range(5)], calc="MAID_SHA256")["data"]["file_path"]
    body = {"advertiser_id": adv, "custom_audience_name": "Devices", "file_paths": [path]}
    refused = raw_api.post("dmp/custom_audience/create/", {**body, "calculate_type": "MAID_SHA256"})
    assert refused["code"] == 40002, refused
    assert refused["message"].startswith("calculate_type:"), refused
    # MAID_SHA256 and FIRST_SHA256 are one value in TikTok's enum (6): the file creates as FIRST_SHA256.
    created = raw_api.post("dmp/custom_audience/create/", {**body, "calculate_type": "FIRST_SHA256"})
    assert created["code"] == 0, created


def test_file_paths_are_16_character_tokens_and_unknown_ones_are_refused(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    adv = emulator.seed.advertiser_ids[0]
    paths = {upload(emulator, adv, [sha("a")])["data"]["file_path"] for _ in range(3)}
    assert len(paths) == 3
    assert all(len(p) == 16 for p in paths)
    assert all("/" not in p for p in paths)
    for bad in ("0123456789abcdef", "dmp/some/long/path.csv"):
        out = raw_api.post(
            "dmp/custom_audience/create/",
            {
                "advertiser_id": adv,
                "custom_audience_name": "X",
                "calculate_type": "EMAIL_SHA256",
                "file_paths": [bad],
            },
        )
        assert out["code"] == 40002, out
        assert out["message"].startswith("file_paths.0:"), out


def test_offline_create_requires_description(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    missing = raw_api.post("offline/create/", {"advertiser_id": adv, "name": "Stores"})
    assert missing["code"] == 40002, missing
    assert missing["message"].startswith("description:"), missing
    ok = raw_api.post("offline/create/", {"advertiser_id": adv, "name": "Stores", "description": "POS sales"})
    assert ok["code"] == 0, ok


def test_event_names_by_source(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    offline = emulator.seed.event_set_id
    pixel = emulator.admin.create_event_set(adv, "web")
    app = emulator.admin.create_event_set(adv, "app")
    crm = emulator.admin.create_event_set(adv, "crm")
    assert _track(raw_api, "web", pixel, [_event("MyCustomWebEvent")])["code"] == 0
    assert _track(raw_api, "app", app, [_event("MyCustomAppEvent")])["code"] == 0
    assert _track(raw_api, "crm", crm, [_event("lead_qualified")])["code"] == 0
    assert _track(raw_api, "offline", offline, [_event("Purchase")])["code"] == 0
    for name in ("LaunchAPP", "MyCustomStoreEvent"):  # app-only and custom names are not offline names
        out = _track(raw_api, "offline", offline, [_event(name, event_id=name)])
        assert out["code"] == 40002, out
        assert out["message"].startswith("data.0.event:"), out


# -- variants -----------------------------------------------------------------------------------------------


def test_variant_names_are_checked() -> None:
    assert parse_variants(["short-rows,no-trailing-slash", "short-rows"]) == [
        "no-trailing-slash",
        "short-rows",
    ]
    with pytest.raises(UnknownVariantError, match="unknown emulator variant"):
        parse_variants(["nope"])
    with pytest.raises(UnknownVariantError, match="exclude each other"):
        parse_variants(["error-field-only", "error-batch-index"])


def test_variants_are_selected_per_reset_and_cleared_by_the_next(emulator: EmulatorServer) -> None:
    emulator.admin.reset("demo", variants=["short-rows"])
    assert emulator.admin.variants() == ["short-rows"]
    assert emulator.admin.set_variants(["no-trailing-slash"]) == ["no-trailing-slash"]
    emulator.admin.reset("demo")
    assert emulator.admin.variants() == []
    with pytest.raises(RuntimeError, match="unknown emulator variant"):
        emulator.admin.set_variants(["nope"])


def test_partner_name_registered(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    assert _track(raw_api, "offline", es, [_event()], partner_name="ttsync")["code"] == 0
    emulator.admin.set_variants(["partner-name-registered"], partner_names=["Acme"])
    out = _track(raw_api, "offline", es, [_event(event_id="e-2")], partner_name="ttsync")
    assert out["code"] == 40063, out
    assert _track(raw_api, "offline", es, [_event(event_id="e-3")], partner_name="Acme")["code"] == 0
    assert _track(raw_api, "offline", es, [_event(event_id="e-4")])["code"] == 0  # omitted: fine


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (None, "data.1.event_id: Not a valid string"),
        ("error-field-only", "Invalid value for event_id: Not a valid string"),
        ("error-batch-index", "Batch.1.event_id: Not a valid string"),
    ],
)
def test_bad_event_message_formats(
    emulator: EmulatorServer, raw_api: RawApi, variant: str | None, message: str
) -> None:
    if variant:
        emulator.admin.set_variants([variant])
    bad = {**_event(event_id="x"), "event_id": 7}
    out = _track(raw_api, "offline", emulator.seed.event_set_id, [_event(), bad])
    assert (out["code"], out["message"]) == (40002, message)


def test_customer_file_at_zero_with_null_error(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    emulator.admin.set_variants(["file-zero-null-error"])
    path = upload(emulator, adv, [sha(str(n)) for n in range(20)])["data"]["file_path"]
    out = raw_api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": adv,
            "custom_audience_name": "S",
            "calculate_type": "EMAIL_SHA256",
            "file_paths": [path],
        },
    )
    details = _details(raw_api, adv, out["data"]["custom_audience_id"])
    assert (details["is_valid"], details["cover_num"], details["error_msg"]) == (False, 0, None)


def test_get_of_a_deleted_audience_by_variant(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    emulator.admin.delete_audience(aud)
    query = {"advertiser_id": adv, "custom_audience_ids": f'["{aud}"]'}
    assert raw_api.get("dmp/custom_audience/get/", **query)["code"] == 40007
    emulator.admin.set_variants(["get-missing-40002"])
    assert raw_api.get("dmp/custom_audience/get/", **query)["code"] == 40002


def test_short_rows_by_variant(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    body = mapping([adv], ["EMAIL_SHA256", "PHONE_SHA256"], [[{"id": sha("a"), "audience_ids": [aud]}]])
    assert raw_api.post("segment/mapping/", body)["code"] == 40002
    emulator.admin.set_variants(["short-rows"])
    assert raw_api.post("segment/mapping/", body)["code"] == 0
    assert emulator.admin.audience_members(aud) == {"EMAIL_SHA256": {sha("a")}}


def test_missing_trailing_slash_by_variant(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    url = "dmp/custom_audience/list"
    assert raw_api.http.get(url, params={"advertiser_id": adv}).status_code == 404
    emulator.admin.set_variants(["no-trailing-slash"])
    response = raw_api.http.get(url, params={"advertiser_id": adv})
    assert response.status_code == 200
    assert response.json()["code"] == 0


def test_strict_properties_by_variant(emulator: EmulatorServer, raw_api: RawApi) -> None:
    es = emulator.seed.event_set_id
    item = _event(properties={"value": 3, "currency": "USD", "event_channel": "in_store"})
    assert _track(raw_api, "offline", es, [item])["code"] == 0
    emulator.admin.set_variants(["strict-properties"])
    out = _track(raw_api, "offline", es, [{**item, "event_id": "e-9"}])
    assert (out["code"], out["message"]) == (40002, "data.0.properties.event_channel: Unknown field.")


def test_mapping_limit_by_variant(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    rows = [[{"id": sha(str(n)), "audience_ids": [aud]}] for n in range(1_001)]
    assert raw_api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows))["code"] == 0
    emulator.admin.set_variants(["mapping-limit-1000"])
    assert raw_api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows))["code"] == 40011
    assert raw_api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows[:1000]))["code"] == 0


def test_serve_lists_variants() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", "emulator", "serve", "--variant", "help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in VARIANTS:
        assert name in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ttsync", "emulator", "serve", "--variant", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "unknown emulator variant" in bad.stderr


def test_server_variants_survive_reset() -> None:
    with EmulatorServer(variants=["short-rows"]) as server:
        assert server.admin.variants() == ["short-rows"]
        server.admin.reset("demo")
        assert server.admin.variants() == ["short-rows"]
        token = {"Authorization": f"Bearer {server.seed.admin_token}"}
        with httpx2.Client(headers=token) as http:
            assert (
                http.get(server.root_url + "/_emulator/variants").json()["available"].keys()
                == VARIANTS.keys()
            )
