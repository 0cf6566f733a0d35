"""The emulator's `dmp/custom_audience/lookalike/create/` over HTTP: the documented fields and rules (ref §2.x
Lookalike audiences), and the client method against it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from test_emulator_audiences import mapping, new_audience, sha
from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.destinations.tiktok.client.errors import TikTokError
from ttsync.destinations.tiktok.client.models.dmp import LookalikeSpec
from ttsync.emulator.embedded import EmulatorServer, RawApi

PATH = "dmp/custom_audience/lookalike/create/"


def _seeded(emulator: EmulatorServer, api: RawApi, people: int) -> tuple[str, str]:
    """An advertiser and a partner audience holding `people` e-mails (ready for mappings)."""
    adv = emulator.seed.advertiser_ids[0]
    aud = new_audience(api, adv)
    emulator.admin.advance_clock(91)
    rows = [[{"id": sha(f"p{i}@example.com"), "audience_ids": [aud]}] for i in range(people)]
    assert api.post("segment/mapping/", mapping([adv], ["EMAIL_SHA256"], rows))["code"] == 0
    return adv, aud


def _body(adv: str, source: str, **spec: Any) -> dict[str, Any]:
    return {"advertiser_id": adv, "custom_audience_name": "Buyers - lookalike",
            "lookalike_spec": {"source_audience_id": source, **spec}}  # fmt: skip


def test_lookalike_created_and_listed_with_its_spec(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv, source = _seeded(emulator, raw_api, 100)
    spec = {"audience_size": "NARROW", "location_ids": ["6252001"], "include_source": True,
            "mobile_os": "IOS", "placements": ["TikTok", "Pangle"]}  # fmt: skip
    out = raw_api.post(PATH, _body(adv, source, **spec))
    assert out["code"] == 0, out
    made = out["data"]["custom_audience_id"]
    listed = raw_api.get("dmp/custom_audience/list/", advertiser_id=adv, custom_audience_ids=[made])["data"][
        "list"
    ]
    assert listed[0]["audience_type"] == "Lookalike Audience"
    assert listed[0]["lookalike_spec"] == {"source_audience_id": source, **spec}
    # A lookalike is never the source of another.
    again = raw_api.post(PATH, _body(adv, made))
    assert again["code"] == 40002
    assert "cannot be a lookalike" in again["message"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lookalike_spec": None}, "lookalike_spec: "),
        ({"lookalike_spec": "x"}, "lookalike_spec: Not a valid object"),
        ({"custom_audience_name": "n" * 129}, "custom_audience_name: Length"),
        ({"audience_sub_type": "OTHER"}, "audience_sub_type: Must be one of"),
        ({"spec": {"audience_size": "HUGE"}}, "lookalike_spec.audience_size: Must be one of"),
        ({"spec": {"mobile_os": "WINDOWS"}}, "lookalike_spec.mobile_os: Must be one of"),
        ({"spec": {"placements": ["Elsewhere"]}}, "lookalike_spec.placements.0: Must be one of"),
        ({"spec": {"location_ids": "6252001"}}, "lookalike_spec.location_ids: "),
    ],
)
def test_bad_fields_are_refused_with_40002(
    emulator: EmulatorServer, raw_api: RawApi, change: dict[str, Any], message: str
) -> None:
    adv, source = _seeded(emulator, raw_api, 100)
    body = _body(adv, source, **change.pop("spec", {})) | change
    if body.get("lookalike_spec") is None:
        body.pop("lookalike_spec")
    out = raw_api.post(PATH, body)
    assert out["code"] == 40002, out
    assert message in out["message"]


def test_source_rules(emulator: EmulatorServer, raw_api: RawApi, analyst_api: RawApi) -> None:
    adv, small = _seeded(emulator, raw_api, 99)
    out = raw_api.post(PATH, _body(adv, small))
    assert out["code"] == 40002
    assert "no less than 100" in out["message"]
    assert raw_api.post(PATH, _body(adv, "123456"))["code"] == 40007
    assert analyst_api.post(PATH, _body(adv, small))["code"] == 40001


def test_client_method(emulator: EmulatorServer, raw_api: RawApi) -> None:
    adv, source = _seeded(emulator, raw_api, 120)

    async def create(source_id: str) -> str:
        async with AsyncTikTokClient(
            access_token=emulator.seed.operator_token, base_url=emulator.base_url
        ) as client:
            spec = LookalikeSpec(source_audience_id=source_id, audience_size="BROAD")
            return (
                await client.create_lookalike_audience(adv, name="x - lookalike", lookalike_spec=spec)
            ).custom_audience_id

    made = asyncio.run(create(source))
    assert made.isdigit()
    with pytest.raises(TikTokError) as refused:
        asyncio.run(create(made))
    assert refused.value.code == 40002
