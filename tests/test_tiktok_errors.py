"""Each error class, raised by real emulator answers, and secrets kept out of errors, reprs and logs."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest

from ttsync.destinations.tiktok.client import (
    AuthenticationError,
    InvalidRequestError,
    LimiterRegistry,
    NotFoundError,
    PermissionDeniedError,
    RateLimits,
    RetryPolicy,
    TikTokClient,
    TikTokError,
)
from ttsync.emulator.embedded import EmulatorServer

FAST = RateLimits(default=1_000.0)


def client_for(emu: EmulatorServer, token: str | None = None, **kw: Any) -> TikTokClient:
    seed = emu.seed
    kw.setdefault("rate_limits", FAST)
    kw.setdefault("app_secret", seed.app_secret)
    kw.setdefault("base_url", emu.base_url)
    return TikTokClient(
        access_token=token if token is not None else seed.operator_token,
        app_id=seed.app_id,
        limiters=LimiterRegistry(),
        **kw,
    )


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_unknown_token_is_authentication_error(emulator: EmulatorServer) -> None:
    with client_for(emulator, token="0" * 40) as client, pytest.raises(AuthenticationError) as err:
        client.list_custom_audiences(emulator.seed.advertiser_ids[0])
    e = err.value
    assert (e.code, e.resolution_key, e.endpoint, e.attempts) == (
        40105,
        "invalid_credentials",
        "dmp/custom_audience/list/",
        1,
    )
    assert e.request_id is not None
    assert e.request_id[:14].isdigit()  # ref §1: 14-digit timestamp prefix
    assert not e.retryable


def test_wrong_app_secret_is_authentication_error(emulator: EmulatorServer) -> None:
    code = emulator.admin.create_auth_code("u", emulator.seed.advertiser_ids)
    with client_for(emulator, app_secret="f" * 40) as client, pytest.raises(AuthenticationError) as err:
        client.get_access_token(code)
    assert err.value.code == 40101


def test_missing_token_is_refused_locally(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    with TikTokClient(base_url=emulator.base_url, app_id=seed.app_id, limiters=LimiterRegistry()) as client:
        with pytest.raises(AuthenticationError, match="no access token"):
            client.list_custom_audiences(seed.advertiser_ids[0])
        assert client.aio.stats.requests == 0


def test_analyst_write_is_permission_denied(emulator: EmulatorServer) -> None:
    seed = emulator.seed
    with client_for(emulator, token=seed.analyst_token) as client:
        assert client.list_custom_audiences(seed.advertiser_ids[0]).page_info is not None  # reads are allowed
        with pytest.raises(PermissionDeniedError) as err:
            client.create_segment_audience(seed.advertiser_ids[0], "not allowed")
    assert err.value.code == 40001
    assert err.value.resolution_key == "missing_advertiser_permissions"
    assert err.value.attempts == 1


def test_deleted_advertiser_is_permission_denied(emulator: EmulatorServer) -> None:
    # ref §5.1: TikTok reuses 40001 for a deleted advertiser.
    adv = emulator.seed.advertiser_ids[1]
    emulator.admin.delete_advertiser(adv)
    with client_for(emulator) as client, pytest.raises(PermissionDeniedError) as err:
        client.create_segment_audience(adv, "gone")
    assert err.value.code == 40001


def test_missing_audience_is_not_found(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client, pytest.raises(NotFoundError) as err:
        client.delete_segment_audience(adv, "123456789")
    assert err.value.code == 40007
    assert err.value.resolution_key == "object_not_found"


def test_invalid_field_is_invalid_request_naming_the_field(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    with client_for(emulator) as client, pytest.raises(InvalidRequestError) as err:
        # Valid hash, but the audience id does not exist: only TikTok can know that.
        client.add_segment_members([adv], ["424242"], ["EMAIL_SHA256"], [[sha("a@example.com")]])
    assert err.value.code == 40002
    assert "batch_data.0.0.audience_ids.0" in err.value.message
    # ttsync only maps into audiences it created: one TikTok does not know has vanished (restart to recreate).
    assert err.value.resolution_key == "audience_disappeared"
    assert err.value.attempts == 1


def test_audience_not_editable_resolution(emulator: EmulatorServer) -> None:
    adv = emulator.seed.advertiser_ids[0]
    rows = "".join(f"{sha(f'u{i}')}\n" for i in range(1_100)).encode()
    with client_for(emulator) as client:
        path = client.upload_audience_file(adv, calculate_type="EMAIL_SHA256", file=rows).file_path
        audience_id = client.create_custom_audience(
            adv, name="small", calculate_type="EMAIL_SHA256", file_paths=[path]
        ).custom_audience_id
        with pytest.raises(InvalidRequestError) as err:
            # ref §2.4: any update leaving fewer than 1,000 people fails.
            client.update_custom_audience(adv, audience_id, action="REMOVE", file_paths=[path])
    assert err.value.code == 40002
    assert err.value.resolution_key == "audience_not_editable"


def test_wrong_path_is_http_404(emulator: EmulatorServer) -> None:
    wrong = emulator.root_url + "/open_api/v9/"
    with client_for(emulator, base_url=wrong) as client, pytest.raises(InvalidRequestError) as err:
        client.list_custom_audiences(emulator.seed.advertiser_ids[0])
    assert err.value.http_status == 404
    assert err.value.code is None


# -- secrets ------------------------------------------------------------------------------------------------


def test_secrets_never_in_errors_reprs_or_logs(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    seed = emulator.seed
    secrets = [seed.app_secret, seed.operator_token]
    caplog.set_level(logging.DEBUG)
    raised: list[TikTokError] = []
    policy = RetryPolicy(max_attempts=2, wait_initial=0.0, wait_jitter=0.0)
    with client_for(emulator, retry=policy) as client:
        # The app secret travels in this query string (ref §4.5): httpx2 logs the URL at INFO.
        granted = client.get_authorized_advertisers()
        code = emulator.admin.create_auth_code("u", seed.advertiser_ids)
        token_result = client.get_access_token(code)
        secrets.append(token_result.access_token.get_secret_value())
        emulator.admin.set_faults(rate=1.0, codes=[50000], seed=1)
        try:
            client.list_custom_audiences(seed.advertiser_ids[0])
        except TikTokError as exc:
            raised.append(exc)
        emulator.admin.clear_faults()
        client.revoke_token()
        try:
            client.get_authorized_advertisers()
        except TikTokError as exc:
            raised.append(exc)
        texts = [repr(client), repr(client.aio), repr(granted), repr(token_result), str(token_result)]
    assert len(raised) == 2
    texts += [str(e) for e in raised] + [repr(e) for e in raised]
    texts.append(caplog.text)
    texts += [str(r.__dict__) for r in caplog.records]
    assert any("secret=[redacted]" in r.getMessage() for r in caplog.records)  # the filter ran
    for text in texts:
        for secret in secrets:
            assert secret not in text
