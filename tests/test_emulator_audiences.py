"""Audience endpoints of the emulator: segment API (ref §2.1, §8.5) and customer-file DMP flow (ref §2.2–§2.5)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx2

from ttsync.emulator.embedded import EmulatorServer, RawApi


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_audience(api: RawApi, advertiser_id: str, name: str = "Buyers") -> str:
    out = api.post("segment/audience/", {"advertiser_id": advertiser_id, "custom_audience_name": name})
    assert out["code"] == 0, out
    return str(out["data"]["audience_id"])


def mapping(
    advertiser_ids: list[str], schema: list[str], rows: list[list[dict[str, Any]]], action: str = "add"
) -> dict[str, Any]:
    return {"advertiser_ids": advertiser_ids, "action": action, "id_schema": schema, "batch_data": rows}


def test_partner_audience_create_list_get_delete(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    out = raw_api.post(
        "segment/audience/",
        {"advertiser_id": adv, "custom_audience_name": "Buyers", "id_type": "EMAIL_SHA256"},
    )
    audience_id = out["data"]["audience_id"]
    assert isinstance(audience_id, str)
    listed = raw_api.get("dmp/custom_audience/list/", advertiser_id=adv, page=1, page_size=10)["data"]
    assert listed["page_info"] == {"page": 1, "page_size": 10, "total_number": 1, "total_page": 1}
    item = listed["list"][0]
    assert item["audience_type"] == "Partner"
    assert item["calculate_type"] == "MULTIPLE_TYPES"
    assert item["is_creator"] is True
    got = raw_api.get("dmp/custom_audience/get/", advertiser_id=adv, custom_audience_ids=[audience_id])[
        "data"
    ]
    details = got["list"][0]["audience_details"]
    assert details["audience_id"] == audience_id
    assert got["list"][0]["audience_history"][0]["action"] == "create"
    assert got["list"][0]["audience_history"][0]["editor"] == "open_api"
    deleted = raw_api.post(
        "segment/audience/", {"advertiser_id": adv, "action": "delete", "delete_audience_id": audience_id}
    )
    assert deleted["code"] == 0
    assert (
        raw_api.get("dmp/custom_audience/list/", advertiser_id=adv)["data"]["page_info"]["total_number"] == 0
    )


def test_long_names_are_truncated_and_duplicates_allowed(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    long_name = "n" * 71
    first = new_audience(raw_api, adv, long_name)
    second = new_audience(raw_api, adv, long_name)
    assert first != second
    assert emulator.admin.audience(first)["name"] == "n" * 67 + "..."
    exact = new_audience(raw_api, adv, "e" * 70)
    assert emulator.admin.audience(exact)["name"] == "e" * 70


def test_mapping_adds_and_deletes_members_with_placeholders(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    email, phone, idfa_md5 = (
        sha("a@example.com"),
        sha("+12133734253"),
        hashlib.md5(b"IDFA", usedforsecurity=False).hexdigest(),
    )
    rows = [
        [{"id": email, "audience_ids": [aud]}, {"id": phone, "audience_ids": [aud]}, {}],
        [{}, {}, {"id": idfa_md5, "audience_ids": [aud]}],
    ]
    out = raw_api.post("segment/mapping/", mapping([adv], ["email_sha256", "PHONE_SHA256", "IDFA_MD5"], rows))
    assert out["code"] == 0, out
    assert emulator.admin.audience_members(aud) == {
        "EMAIL_SHA256": {email},
        "PHONE_SHA256": {phone},
        "IDFA_MD5": {idfa_md5},
    }
    out = raw_api.post(
        "segment/mapping/",
        mapping([adv], ["PHONE_SHA256"], [[{"id": phone, "audience_ids": [aud]}]], "delete"),
    )
    assert out["code"] == 0
    assert emulator.admin.audience_members(aud)["PHONE_SHA256"] == set()
    details = raw_api.get("dmp/custom_audience/get/", advertiser_id=adv, custom_audience_ids=[aud])["data"][
        "list"
    ][0]
    assert details["audience_details"]["cover_num"] == 2
    assert details["audience_details"]["is_valid"] is True


def test_mapping_validation_names_the_field(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    good = {"id": sha("x"), "audience_ids": [aud]}
    cases: list[tuple[dict[str, Any], str]] = [
        (mapping([adv], ["EMAIL"], [[good]]), "id_schema.0"),
        (mapping([adv], ["EMAIL_SHA256", "email_sha256"], [[good, good]]), "id_schema"),
        (mapping([adv], ["EMAIL_SHA256", "PHONE_SHA256"], [[good]]), "batch_data.0"),
        (
            mapping([adv], ["EMAIL_SHA256"], [[good], [{"id": "abc", "audience_ids": [aud]}]]),
            "batch_data.1.0.id",
        ),
        (mapping([adv], ["IDFA_MD5"], [[good]]), "batch_data.0.0.id"),
        (
            mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("x").upper(), "audience_ids": [aud]}]]),
            "batch_data.0.0.id",
        ),
        (
            mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": ["7000000000000000009"]}]]),
            "batch_data.0.0.audience_ids.0",
        ),
        (
            mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": [int(aud)]}]]),
            "batch_data.0.0.audience_ids.0",
        ),
    ]
    for body, field in cases:
        out = raw_api.post("segment/mapping/", body)
        assert out["code"] == 40002, (field, out)
        assert out["message"].startswith(field + ":"), (field, out["message"])
    assert emulator.admin.audience_members(aud) == {}  # nothing applied from rejected requests


def test_mapping_audience_must_belong_to_listed_advertisers(
    emulator: EmulatorServer, raw_api: RawApi
) -> None:
    first, second = emulator.seed.advertiser_ids
    aud = new_audience(raw_api, first)
    out = raw_api.post(
        "segment/mapping/", mapping([second], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": [aud]}]])
    )
    assert out["code"] == 40002
    # Once shared, the second advertiser may map into it too.
    shared = raw_api.post(
        "dmp/custom_audience/share/",
        {"advertiser_id": first, "custom_audience_ids": [aud], "shared_advertiser_ids": [second]},
    )
    assert shared["code"] == 0
    out = raw_api.post(
        "segment/mapping/", mapping([second], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": [aud]}]])
    )
    assert out["code"] == 0


def test_mapping_row_limit_is_40011(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    emulator.admin.set_mapping_limit(3)
    rows = [[{"id": sha(str(n)), "audience_ids": [aud]}] for n in range(4)]
    assert raw_api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows))["code"] == 40011
    assert raw_api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows[:3]))["code"] == 0


def test_processing_delay_refuses_mapping_then_accepts(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    emulator.admin.set_processing_delay(90)
    aud = new_audience(raw_api, adv)
    body = mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": [aud]}]])
    out = raw_api.post("segment/mapping/", body)
    assert out["code"] == 40201
    details = raw_api.get("dmp/custom_audience/get/", advertiser_id=adv, custom_audience_ids=[aud])["data"][
        "list"
    ][0]["audience_details"]
    assert details["is_valid"] is False
    assert details["cover_num"] == 0
    emulator.admin.advance_clock(91)
    assert raw_api.post("segment/mapping/", body)["code"] == 0


def test_audience_cap_of_400(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    assert emulator.admin.fill_audiences(adv, 399) == 399
    new_audience(raw_api, adv, "the 400th")
    out = raw_api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "one too many"})
    assert out["code"] == 40002
    assert "limit of 400" in out["message"]
    listed = raw_api.get("dmp/custom_audience/list/", advertiser_id=adv, page=4, page_size=100)["data"]
    assert listed["page_info"]["total_number"] == 400
    assert len(listed["list"]) == 100


def test_analyst_cannot_write(emulator: EmulatorServer, analyst_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    out = analyst_api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "x"})
    assert out["code"] == 40001
    assert "/segment/audience/:POST" in out["message"]
    assert "Analyst" in out["message"]
    assert analyst_api.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 0


def test_expired_audience_is_invalid_and_refuses_mapping(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(raw_api, adv)
    emulator.admin.expire_audience(aud)
    out = raw_api.post(
        "segment/mapping/", mapping([adv], ["EMAIL_SHA256"], [[{"id": sha("x"), "audience_ids": [aud]}]])
    )
    assert out["code"] == 40002
    assert emulator.admin.audience(aud)["is_valid"] is False


def upload(
    emulator: EmulatorServer,
    advertiser_id: str,
    lines: list[str],
    *,
    name: str = "list.csv",
    calc: str = "EMAIL_SHA256",
    key: str = "calculate_type",
    signature: str | None = None,
) -> dict[str, Any]:
    content = ("\n".join(lines) + "\n").encode()
    data = {
        "advertiser_id": advertiser_id,
        key: calc,
        "file_signature": signature or hashlib.md5(content, usedforsecurity=False).hexdigest(),
    }
    with httpx2.Client(headers={"Access-Token": emulator.seed.operator_token}) as http:
        response = http.post(
            emulator.base_url + "dmp/custom_audience/file/upload/",
            data=data,
            files={"file": (name, content, "text/csv")},
        )
    assert response.status_code == 200
    return dict(response.json())


def test_customer_file_flow_and_update_rules(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    big = upload(emulator, adv, ["EMAIL_SHA256", *(sha(f"{n}@x.com") for n in range(1200))])
    assert big["code"] == 0, big
    path = big["data"]["file_path"]
    created = raw_api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": adv,
            "custom_audience_name": "File",
            "calculate_type": "EMAIL_SHA256",
            "file_paths": [path],
        },
    )
    aud = created["data"]["custom_audience_id"]
    details = raw_api.get("dmp/custom_audience/get/", advertiser_id=adv, custom_audience_ids=[aud])["data"][
        "list"
    ][0]["audience_details"]
    assert details["cover_num"] == 1200
    assert details["type"] == "Customer File Audience"
    # REMOVE 300 would leave 900 < 1,000: refused with TikTok's message.
    small = upload(
        emulator, adv, [sha(f"{n}@x.com") for n in range(300)], key="caculate_type", name="rm.txt"
    )["data"]["file_path"]
    out = raw_api.post(
        "dmp/custom_audience/update/",
        {"advertiser_id": adv, "custom_audience_id": aud, "action": "REMOVE", "file_paths": [small]},
    )
    assert (out["code"], out["message"]) == (40002, "Audience is not editable, please check audience status")
    # REPLACE is the default action: replacing with the 300-row file is refused too.
    out = raw_api.post(
        "dmp/custom_audience/update/",
        {"advertiser_id": adv, "custom_audience_id": aud, "file_paths": [small]},
    )
    assert out["code"] == 40002
    more = upload(emulator, adv, [sha(f"{n}@y.com") for n in range(50)])["data"]["file_path"]
    out = raw_api.post(
        "dmp/custom_audience/update/",
        {"advertiser_id": adv, "custom_audience_id": aud, "action": "APPEND", "file_paths": [more]},
    )
    assert out["code"] == 0
    assert len(emulator.admin.audience_members(aud)["EMAIL_SHA256"]) == 1250


def test_customer_file_below_1000_lands_at_zero(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    path = upload(emulator, adv, [sha(f"{n}") for n in range(10)])["data"]["file_path"]
    aud = raw_api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": adv,
            "custom_audience_name": "Tiny",
            "calculate_type": "EMAIL_SHA256",
            "file_paths": [path],
        },
    )["data"]["custom_audience_id"]
    assert emulator.admin.audience(aud)["cover_num"] == 0
    out = raw_api.post(
        "dmp/custom_audience/update/",
        {"advertiser_id": adv, "custom_audience_id": aud, "custom_audience_name": "renamed"},
    )
    assert out["code"] == 40002


def test_upload_rejections(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    assert upload(emulator, adv, [sha("a")], signature="0" * 32)["code"] == 40900
    assert upload(emulator, adv, [sha("a")], name="list.xlsx")["code"] == 40908
    assert upload(emulator, adv, [sha("a")], calc="EMAIL_MD5")["code"] == 40909


def test_create_requires_matching_calculate_type(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv = emulator.seed.advertiser_ids[0]
    path = upload(emulator, adv, [sha("a")])["data"]["file_path"]
    out = raw_api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": adv,
            "custom_audience_name": "x",
            "calculate_type": "PHONE_SHA256",
            "file_paths": [path],
        },
    )
    assert out["code"] == 40002
    assert out["message"].startswith("file_paths.0:")


def test_share_cancel_log_and_delete(emulator: EmulatorServer, raw_api: RawApi) -> None:
    first, second = emulator.seed.advertiser_ids
    aud = new_audience(raw_api, first)
    assert (
        raw_api.post(
            "dmp/custom_audience/share/",
            {"advertiser_id": first, "custom_audience_ids": [aud], "shared_advertiser_ids": [second]},
        )["code"]
        == 0
    )
    seen = raw_api.get("dmp/custom_audience/list/", advertiser_id=second)["data"]["list"][0]
    assert (seen["shared"], seen["is_creator"]) == (True, False)
    owner_view = raw_api.get("dmp/custom_audience/list/", advertiser_id=first)["data"]["list"][0]
    assert (owner_view["shared"], owner_view["is_creator"]) == (True, True)
    log = raw_api.get("dmp/custom_audience/share/log/", advertiser_id=first, custom_audience_id=aud)["data"][
        "list"
    ]
    assert log[0]["shared_advertiser_id"] == second
    assert (
        raw_api.post(
            "dmp/custom_audience/share/cancel/",
            {"advertiser_id": first, "custom_audience_id": aud, "shared_advertiser_id": second},
        )["code"]
        == 0
    )
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=second)["data"]["list"] == []
    assert (
        raw_api.post("dmp/custom_audience/delete/", {"advertiser_id": first, "custom_audience_ids": [aud]})[
            "code"
        ]
        == 0
    )
    assert (
        raw_api.get("dmp/custom_audience/get/", advertiser_id=first, custom_audience_ids=[aud])["code"]
        == 40007
    )
