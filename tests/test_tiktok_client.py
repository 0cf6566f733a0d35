"""Every client method against the emulator over loopback HTTP (fixtures from tests/conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from pydantic import SecretStr

from ttsync.destinations.tiktok.client import (
    AsyncTikTokClient,
    AuthenticationError,
    ClientValidationError,
    LimiterRegistry,
    RateLimits,
    TikTokClient,
)
from ttsync.destinations.tiktok.client._core import build_request
from ttsync.destinations.tiktok.client.models.dmp import CustomAudienceCreateRequest
from ttsync.emulator.embedded import EmulatorServer

# The emulator runs in this process: the default 10-QPS group would make this module slow for no benefit.
FAST = RateLimits(default=1_000.0)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def md5(value: str) -> str:
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


def client_for(emu: EmulatorServer, token: str | None = None, **kw: Any) -> TikTokClient:
    seed = emu.seed
    kw.setdefault("rate_limits", FAST)
    return TikTokClient(
        access_token=token if token is not None else seed.operator_token,
        app_id=seed.app_id,
        app_secret=seed.app_secret,
        base_url=emu.base_url,
        limiters=LimiterRegistry(),  # fresh limiter state per test (the demo app id is the same every reset)
        **kw,
    )


# -- OAuth ------------------------------------------------------------------------------------------------


def test_access_token_exchange_and_advertiser_get(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    code = emulator.admin.create_auth_code("oauth-user", seed.advertiser_ids, role="Operator")
    with client_for(emulator, token="") as anonymous:
        granted = anonymous.get_access_token(code)
        assert isinstance(granted.access_token, SecretStr)
        assert granted.advertiser_ids == seed.advertiser_ids
        assert all(isinstance(a, str) for a in granted.advertiser_ids)
        assert granted.request_id
        # ref §4.2: auth codes are single-use.
        with pytest.raises(AuthenticationError) as reused:
            anonymous.get_access_token(code)
        assert reused.value.code == 40110
    with client_for(emulator, token=granted.access_token.get_secret_value()) as client:
        advertisers = client.get_authorized_advertisers()
    assert [a.advertiser_id for a in advertisers.advertisers] == seed.advertiser_ids
    assert all(a.advertiser_name for a in advertisers.advertisers)


def test_revoke_token_then_calls_fail(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    issued = emulator.admin.create_token("to-revoke", seed.advertiser_ids, "Operator")
    with client_for(emulator, token=issued["access_token"]) as client:
        assert client.get_authorized_advertisers().advertisers
        revoked = client.revoke_token()
        assert sorted(revoked.advertiser_ids) == sorted(seed.advertiser_ids)
        with pytest.raises(AuthenticationError) as err:
            client.get_authorized_advertisers()
    assert err.value.code == 40105
    assert err.value.resolution_key == "invalid_credentials"


def test_refresh_user_token_rotates_the_pair(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    issued = emulator.admin.create_token(
        "creator", seed.advertiser_ids, "Operator", expires_in=86_400, with_refresh=True
    )
    assert issued["refresh_token"]
    with client_for(emulator, token=issued["access_token"]) as client:
        refreshed = client.refresh_user_token(issued["refresh_token"])
        assert refreshed.access_token.get_secret_value() != issued["access_token"]
        assert refreshed.refresh_token is not None
        # The old refresh token is spent.
        with pytest.raises(AuthenticationError):
            client.refresh_user_token(issued["refresh_token"])
    with client_for(emulator, token=refreshed.access_token.get_secret_value()) as renewed:
        assert renewed.get_authorized_advertisers().advertisers


# -- Segment API --------------------------------------------------------------------------------------------


def test_segment_audience_mapping_round_trip(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        created = client.create_segment_audience(adv, "x" * 80)
        audience_id = created.audience_id
        assert isinstance(audience_id, str)
        rows: list[list[str | None]] = [
            [sha("a@example.com"), sha("+12133734253")],
            [sha("b@example.com"), None],  # no phone: sent as the {} placeholder
            [None, sha("+447700900123")],
        ]
        client.add_segment_members([adv], [audience_id], ["EMAIL_SHA256", "PHONE_SHA256"], rows)
        members = emulator.admin.audience_members(audience_id)
        assert members["EMAIL_SHA256"] == {sha("a@example.com"), sha("b@example.com")}
        assert members["PHONE_SHA256"] == {sha("+12133734253"), sha("+447700900123")}

        client.remove_segment_members([adv], [audience_id], ["EMAIL_SHA256"], [[sha("a@example.com")]])
        assert emulator.admin.audience_members(audience_id)["EMAIL_SHA256"] == {sha("b@example.com")}

        client.segment_mapping(
            action="add",
            advertiser_ids=[adv],
            audience_ids=[audience_id],
            id_schema=["IDFA_MD5"],
            rows=[[md5("X")]],
        )
        assert emulator.admin.audience_members(audience_id)["IDFA_MD5"] == {md5("X")}

        details = client.get_custom_audiences(adv, [audience_id]).audiences[0].audience_details
        assert details.name == "x" * 67 + "..."  # ref §2.1 truncation
        assert details.type == "Partner"

        deleted = client.delete_segment_audience(adv, audience_id)
        assert deleted.audience_id == audience_id
        assert emulator.admin.audience(audience_id)["deleted"] is True


def test_mapping_refuses_raw_identifiers_before_sending(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        audience_id = client.create_segment_audience(adv, "guarded").audience_id
        sent_before = client.aio.stats.requests
        with pytest.raises(ClientValidationError) as err:
            client.add_segment_members([adv], [audience_id], ["EMAIL_SHA256"], [["jane.doe@example.com"]])
        assert client.aio.stats.requests == sent_before  # nothing went over the wire
    assert "jane.doe" not in str(err.value)
    assert "rows.0.0" in str(err.value)
    assert emulator.admin.audience_members(audience_id).get("EMAIL_SHA256", set()) == set()


def test_mapping_rows_must_align_with_schema(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client, pytest.raises(ClientValidationError, match=r"rows\.1 has 1 values"):
        client.add_segment_members(
            [adv], ["1"], ["EMAIL_SHA256", "PHONE_SHA256"], [[sha("a"), None], [sha("b")]]
        )
    with client_for(emulator) as client, pytest.raises(ClientValidationError, match="no identifier"):
        client.add_segment_members([adv], ["1"], ["EMAIL_SHA256"], [[None]])


def test_mapping_bad_input_is_refused_with_a_reason_before_sending(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    bad: list[tuple[list[str], list[list[object]], str]] = [
        (["EMAIL_SHA256"], [], "rows is empty"),
        (["EMAIL_SHA256"], [[sha("a")], [12345]], r"rows\.1\.0 is not a lowercase hex hash"),
        (
            ["EMAIL_SHA256", "IDFA_MD5"],
            [[sha("a"), sha("b")]],
            r"rows\.0\.1 is not a lowercase hex hash for IDFA_MD5",
        ),
        (["EMAIL_SHA256"], [[sha("A@EXAMPLE.COM").upper()]], r"rows\.0\.0"),
        (["EMAIL_SHA256"], [[sha("a")], [sha("b") + "\n" + sha("c")]], r"rows\.1\.0 is not"),  # two in one
        (["EMAIL_SHA256"], [[sha("a")], [sha("b"), sha("c")]], r"rows\.1 has 2 values"),
        (["EMAIL_SHA256"], [[sha("a")], [""]], r"rows\.1 has no identifier"),
    ]
    with client_for(emulator) as client:
        for schema, rows, reason in bad:
            with pytest.raises(ClientValidationError, match=reason) as err:
                client.add_segment_members([adv], ["1"], schema, rows)  # type: ignore[arg-type]
            assert err.value.resolution_key == "invalid_request"
        with pytest.raises(ClientValidationError, match="id_schema"):
            client.add_segment_members([adv], ["1"], ["EMAIL"], [[sha("a")]])  # type: ignore[list-item]
        assert client.aio.stats.requests == 0  # nothing went over the wire


# -- DMP custom audiences ------------------------------------------------------------------------------------


def test_list_paginates_and_iterates_all(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        ids = {client.create_segment_audience(adv, f"aud {n}").audience_id for n in range(5)}
        page = client.list_custom_audiences(adv, page=1, page_size=2)
        assert len(page.audiences) == 2
        assert page.page_info.total_number == 5
        assert page.page_info.total_page == 3
        every = list(client.iter_custom_audiences(adv, page_size=2))
        assert {a.audience_id for a in every} == ids
        assert len(every) == 5
        only = client.list_custom_audiences(adv, custom_audience_ids=sorted(ids)[:2])
        assert {a.audience_id for a in only.audiences} == set(sorted(ids)[:2])


def test_async_client_iterates_all_pages(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    adv = seed.advertiser_ids[0]

    async def scenario() -> tuple[list[str | None], list[str]]:
        async with AsyncTikTokClient(
            access_token=seed.operator_token,
            app_id=seed.app_id,
            base_url=emulator.base_url,
            rate_limits=FAST,
            limiters=LimiterRegistry(),
        ) as client:
            created = await asyncio.gather(*(client.create_segment_audience(adv, f"a{n}") for n in range(3)))
            seen = [a.audience_id async for a in client.iter_custom_audiences(adv, page_size=1)]
        return [c.audience_id for c in created], seen

    created, seen = asyncio.run(scenario())
    assert sorted(seen) == sorted(a for a in created if a)


def customer_file(n: int, offset: int = 0) -> bytes:
    return "".join(f"{sha(f'user{i}@example.com')}\n" for i in range(offset, offset + n)).encode()


def test_customer_file_upload_create_update_get(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        upload = client.upload_audience_file(
            adv, calculate_type="EMAIL_SHA256", file=customer_file(1_200), file_name="first.csv"
        )
        assert upload.file_path
        created = client.create_custom_audience(
            adv,
            name="customer file",
            calculate_type="EMAIL_SHA256",
            file_paths=[upload.file_path],
            retention_in_days=30,
        )
        audience_id = created.custom_audience_id
        more = client.upload_audience_file(
            adv, calculate_type="EMAIL_SHA256", file=customer_file(300, 5_000), file_name="more.txt"
        )
        client.update_custom_audience(adv, audience_id, action="APPEND", file_paths=[more.file_path])
        got = client.get_custom_audiences(adv, [audience_id], history_size=10).audiences[0]
        assert got.audience_details.audience_id == audience_id
        assert got.audience_details.calculate_type == "EMAIL_SHA256"
        assert len(got.audience_history) >= 2
        members = emulator.admin.audience_members(audience_id)
        assert len(members["EMAIL_SHA256"]) == 1_500
        client.update_custom_audience(adv, audience_id, action="REMOVE", file_paths=[more.file_path])
        assert len(emulator.admin.audience_members(audience_id)["EMAIL_SHA256"]) == 1_200


def test_upload_refuses_other_suffixes(emulator: EmulatorServer, tmp_path: Any) -> None:
    adv = emulator.seed.advertiser_ids[0]
    path = tmp_path / "people.xlsx"
    path.write_bytes(customer_file(3))
    with client_for(emulator) as client, pytest.raises(ClientValidationError, match=r"\.csv or \.txt"):
        client.upload_audience_file(adv, calculate_type="EMAIL_SHA256", file=path)


def test_update_requires_something_to_change(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client, pytest.raises(ClientValidationError):
        client.update_custom_audience(adv, "1", action="APPEND")


def test_share_cancel_and_delete(emulator: EmulatorServer) -> None:
    adv, other = emulator.seed.advertiser_ids
    with client_for(emulator) as client:
        audience_id = client.create_segment_audience(adv, "shared").audience_id
        client.share_custom_audiences(adv, [audience_id], [other])
        assert other in emulator.admin.audience(audience_id)["shared_with"]
        seen_by_other = client.get_custom_audiences(other, [audience_id]).audiences[0].audience_details
        assert seen_by_other.is_creator is False
        client.cancel_custom_audience_share(adv, audience_id, other)
        assert other not in emulator.admin.audience(audience_id)["shared_with"]
        client.delete_custom_audiences(adv, [audience_id])
        assert emulator.admin.audience(audience_id)["deleted"] is True


# -- Offline event sets and events ------------------------------------------------------------------------------


def test_offline_event_sets_and_track(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    adv = seed.advertiser_ids[0]
    with client_for(emulator) as client:
        created = client.create_offline_event_set(adv, "Store purchases", description="POS")
        listed = client.get_offline_event_sets(adv)
        assert {s.event_set_id for s in listed.event_set_list} >= {created.event_set_id, seed.event_set_id}
        only = client.get_offline_event_sets(adv, event_set_ids=[created.event_set_id])
        assert [s.name for s in only.event_set_list] == ["Store purchases"]

        event = {
            "event": "CompletePayment",
            "event_time": 1_700_000_000,
            "event_id": "order-1",
            "user": {"email": sha("a@example.com")},
            "properties": {"currency": "USD", "value": 12.5},
        }
        result = client.track_events(
            event_source="offline", event_source_id=created.event_set_id, data=[event]
        )
        assert result.partial_success is False
        client.track_events(
            event_source="offline", event_source_id=created.event_set_id, data=[event]
        )  # duplicate
        client.track_events(
            event_source="offline",
            event_source_id=created.event_set_id,
            data=[{**event, "event_id": "test-1"}],
            test_event_code="TEST123",
        )
    stored = emulator.admin.events(created.event_set_id)
    assert [e["event_id"] for e in stored] == ["order-1"]  # de-duplicated, test event kept apart
    assert [e["event_id"] for e in emulator.admin.events(created.event_set_id, test=True)] == ["test-1"]


def test_track_refuses_more_than_1000_events_locally(emulator: EmulatorServer) -> None:
    event = {"event": "Purchase", "event_time": 1_700_000_000, "event_id": "x"}
    with client_for(emulator) as client, pytest.raises(ClientValidationError, match="data"):
        client.track_events(
            event_source="offline", event_source_id=emulator.seed.event_set_id, data=[event] * 1_001
        )


def test_mapping_shrinks_after_a_size_refusal_and_remembers_it(emulator: EmulatorServer) -> None:
    """TikTok documents no maximum rows per segment/mapping/ (ref §2.1); under the emulator's 1,000-row
    variant the client splits a refused request and later clients of the same app send 1,000 from the start."""
    emulator.admin.set_variants(["mapping-limit-1000"])
    adv = emulator.seed.advertiser_ids[0]
    seed = emulator.seed
    registry = LimiterRegistry()

    def make() -> AsyncTikTokClient:
        return AsyncTikTokClient(
            access_token=seed.operator_token,
            app_id=seed.app_id,
            base_url=emulator.base_url,
            limiters=registry,
            rate_limits=FAST,
        )

    async def go() -> tuple[str, list[tuple[int, int]]]:
        seen: list[tuple[int, int]] = []
        async with make() as first:
            audience_id = (await first.create_segment_audience(adv, "Big")).audience_id
            rows = [[sha(f"{n}@x.com")] for n in range(2_500)]
            await first.add_segment_members([adv], [audience_id], ["EMAIL_SHA256"], rows)
            seen.append((first.stats.failures, first.stats.calls))
            assert first.mapping_row_limit() == 1_000
        async with make() as second:
            body = json.dumps(
                [[{"id": sha(f"{n}@y.com"), "audience_ids": [audience_id]}] for n in range(2_500)]
            )
            await second.segment_mapping_json(
                action="add", advertiser_ids=[adv], id_schema=["EMAIL_SHA256"], batch_data_json=body
            )
            seen.append((second.stats.failures, second.stats.calls))
        return audience_id, seen

    audience_id, seen = asyncio.run(go())
    # The first client: create, the refused 2,500, then 3 requests of at most 1,000.
    assert seen[0] == (1, 5)
    assert seen[1] == (0, 3)  # the second one knew the size: no refusal
    assert len(emulator.admin.audience_members(audience_id)["EMAIL_SHA256"]) == 5_000


def test_create_sends_maid_files_as_first_and_refuses_maid_in_the_request(emulator: EmulatorServer) -> None:
    """`dmp/custom_audience/create/` has no MAID_* (official SDK create spec, ref §9); FIRST_* is its equal."""
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client:
        content = "\n".join(sha(str(n)) for n in range(10)).encode()
        path = client.upload_audience_file(adv, calculate_type="MAID_SHA256", file=content).file_path
        assert len(path) == 16
        created = client.create_custom_audience(
            adv, name="Devices", calculate_type="MAID_SHA256", file_paths=[path]
        )
        assert emulator.admin.audience(created.custom_audience_id)["calculate_type"] == "FIRST_SHA256"
    with pytest.raises(ClientValidationError):
        build_request(
            CustomAudienceCreateRequest,
            "dmp/custom_audience/create/",
            advertiser_id=adv,
            custom_audience_name="x",
            calculate_type="MAID_SHA256",
            file_paths=[path],
        )


def test_every_endpoint_path_keeps_the_trailing_slash() -> None:
    """TikTok documents a 404 without it (ref §1); some clients omit it (ref §9): ttsync always sends it."""
    import inspect
    import re

    from ttsync.destinations.tiktok.client import _dmp, _segment
    from ttsync.destinations.tiktok.client import client as client_module

    source = "".join(inspect.getsource(m) for m in (client_module, _segment, _dmp))  # the endpoint modules
    paths = re.findall(r'path = "([^"]+)"', source)
    assert len(paths) > 15
    assert [p for p in paths if not p.endswith("/")] == []
