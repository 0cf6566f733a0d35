"""OAuth in the emulator (ref §4): consent page, auth code exchange, revoke, refresh."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx2

from ttsync.emulator.embedded import EmulatorServer, RawApi


def consent(emulator: EmulatorServer, user_name: str) -> dict[str, str]:
    """Drive the consent page over HTTP like a browser; returns the redirect's query parameters."""
    seed = emulator.seed
    with httpx2.Client(base_url=emulator.root_url) as http:
        page = http.get(
            "/portal/auth",
            params={"app_id": seed.app_id, "state": "s-1", "redirect_uri": "https://app.example/cb?x=1"},
        )
        assert page.status_code == 200
        assert "<form" in page.text
        match = re.search(rf'value="(\d+)"> {user_name} ', page.text)
        assert match, page.text
        answer = http.post(
            "/portal/auth",
            data={
                "app_id": seed.app_id,
                "state": "s-1",
                "redirect_uri": "https://app.example/cb?x=1",
                "user_id": match.group(1),
            },
        )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert location.netloc == "app.example"
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def test_consent_page_to_token_and_single_use_code(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    params = consent(emulator, "demo-operator")
    assert params["state"] == "s-1"
    assert params["x"] == "1"
    assert params["auth_code"] == params["code"]
    body = {"app_id": seed.app_id, "secret": seed.app_secret, "auth_code": params["auth_code"]}
    anonymous = RawApi(emulator, None)
    try:
        out = anonymous.post("oauth2/access_token/", body)
        assert out["code"] == 0, out
        assert set(out["data"]) == {"access_token", "advertiser_ids", "scope"}
        assert out["data"]["advertiser_ids"] == seed.advertiser_ids
        assert anonymous.post("oauth2/access_token/", body)["code"] == 40110  # single use
        token_api = RawApi(emulator, out["data"]["access_token"])
        listed = token_api.get("oauth2/advertiser/get/", app_id=seed.app_id, secret=seed.app_secret)
        assert [a["advertiser_id"] for a in listed["data"]["list"]] == seed.advertiser_ids
        token_api.close()
    finally:
        anonymous.close()


def test_auth_code_expires_after_an_hour(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    code = consent(emulator, "demo-operator")["auth_code"]
    emulator.admin.advance_clock(3601)
    with RawApi(emulator, None) as api:
        out = api.post(
            "oauth2/access_token/", {"app_id": seed.app_id, "secret": seed.app_secret, "auth_code": code}
        )
    assert out["code"] == 40110


def test_wrong_secret_and_app_mismatch(emulator: EmulatorServer, raw_api: RawApi) -> None:
    seed = emulator.seed
    code = emulator.admin.create_auth_code("someone", seed.advertiser_ids)
    with RawApi(emulator, None) as api:
        out = api.post("oauth2/access_token/", {"app_id": seed.app_id, "secret": "0" * 40, "auth_code": code})
    assert out["code"] == 40101
    assert (
        raw_api.get("oauth2/advertiser/get/", app_id="7000000000000000001", secret=seed.app_secret)["code"]
        == 40113
    )


def test_revoke_token(emulator: EmulatorServer, raw_api: RawApi) -> None:
    seed = emulator.seed
    with RawApi(emulator, None) as api:
        out = api.post(
            "oauth2/revoke_token/",
            {"app_id": seed.app_id, "secret": seed.app_secret, "access_token": seed.operator_token},
        )
    assert out["code"] == 0
    assert out["data"] == {"app_id": seed.app_id, "advertiser_ids": seed.advertiser_ids}
    assert raw_api.get("dmp/custom_audience/list/", advertiser_id=seed.advertiser_ids[0])["code"] == 40105


def test_expiring_tokens_refresh_through_tt_user_endpoint(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    emulator.admin.set_token_expiry(seed.app_id, 3600)
    code = emulator.admin.create_auth_code("refresher", seed.advertiser_ids)
    with RawApi(emulator, None) as api:
        issued = api.post(
            "oauth2/access_token/", {"app_id": seed.app_id, "secret": seed.app_secret, "auth_code": code}
        )["data"]
        assert issued["expires_in"] == 3600
        refresh = issued["refresh_token"]
        emulator.admin.advance_clock(3601)
        with RawApi(emulator, issued["access_token"]) as old:
            assert old.get("dmp/custom_audience/list/", advertiser_id=seed.advertiser_ids[0])["code"] == 40102
        marketing = api.post(
            "oauth2/refresh_token/",
            {"app_id": seed.app_id, "secret": seed.app_secret, "refresh_token": refresh},
        )
        assert marketing["code"] == 40107
        body = {
            "client_id": seed.app_id,
            "client_secret": seed.app_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh,
        }
        renewed = api.post("tt_user/oauth2/refresh_token/", body)
        assert renewed["code"] == 0, renewed
        assert (
            api.post("tt_user/oauth2/refresh_token/", body)["code"] == 40107
        )  # rotated: old refresh token is gone
        assert api.post("tt_user/oauth2/refresh_token/", {**body, "grant_type": "code"})["code"] == 40108
    with RawApi(emulator, renewed["data"]["access_token"]) as fresh:
        assert fresh.get("dmp/custom_audience/list/", advertiser_id=seed.advertiser_ids[0])["code"] == 0


def test_admin_state_redacts_secrets(emulator: EmulatorServer) -> None:
    auth = {"Authorization": f"Bearer {emulator.seed.admin_token}"}
    text = httpx2.get(emulator.root_url + "/_emulator/state", headers=auth).text
    seed = emulator.seed
    for secret in (seed.app_secret, seed.operator_token, seed.analyst_token):
        assert secret not in text
    assert seed.app_secret not in repr(seed)
    assert seed.operator_token not in repr(seed)
