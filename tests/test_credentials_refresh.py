"""`ensure_fresh_token`: tokens with a refresh token are refreshed before they expire (ref §4.4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from ttsync.config.models import Credential
from ttsync.destinations.tiktok.client import AuthenticationError
from ttsync.destinations.tiktok.oauth import client_for, ensure_fresh_token, exchange_code
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import Store, repos
from ttsync.store.crypto import SecretBox, generate_key
from ttsync.store.db import sqlite_url

CREDENTIAL = "tiktok"


@pytest.fixture
def store(tmp_path: Path, emulator: EmulatorServer) -> Iterator[Store]:
    opened = Store.open(sqlite_url(tmp_path / "ttsync.db"), SecretBox(generate_key()))
    seed = emulator.seed
    repos.save_credential(
        opened,
        Credential(
            name=CREDENTIAL,
            app_id=seed.app_id,
            app_secret=SecretStr(seed.app_secret),
            environment="sandbox",
            sandbox_base_url=emulator.base_url,
        ),
    )
    yield opened
    opened.close()


def _authorize_expiring(store: Store, emulator: EmulatorServer, expires_in: int) -> Credential:
    emulator.admin.set_token_expiry(emulator.seed.app_id, expires_in)
    code = emulator.admin.create_auth_code("demo-operator", emulator.seed.advertiser_ids)
    result = exchange_code(store, CREDENTIAL, code)
    assert result.has_refresh_token
    return repos.get_credential(store, CREDENTIAL)


def _works(credential: Credential) -> bool:
    try:
        with client_for(credential) as client:
            client.get_authorized_advertisers()
    except AuthenticationError:
        return False
    return True


def test_expiring_token_is_refreshed_and_stored(
    store: Store, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = _authorize_expiring(store, emulator, expires_in=120)
    assert before.token_expires_at is not None
    assert before.token_expires_at - datetime.now(UTC) < timedelta(seconds=125)
    emulator.admin.advance_clock(200)
    assert not _works(before)  # the emulator now answers 40102

    after = ensure_fresh_token(store, CREDENTIAL, margin_seconds=300)
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # rotated
    assert _works(after)
    assert repos.get_credential(store, CREDENTIAL).access_token == after.access_token
    assert after.token_expires_at is not None
    assert after.token_expires_at > before.token_expires_at
    secrets = [emulator.seed.app_secret]
    for cred in (before, after):
        assert cred.access_token is not None
        assert cred.refresh_token is not None
        secrets += [cred.access_token.get_secret_value(), cred.refresh_token.get_secret_value()]
    for secret in secrets:
        assert secret not in caplog.text
    # Fresh enough now: a second call does not refresh again.
    assert ensure_fresh_token(store, CREDENTIAL, margin_seconds=60).access_token == after.access_token


def test_token_far_from_expiry_and_long_lived_tokens_are_left_alone(
    store: Store, emulator: EmulatorServer
) -> None:
    expiring = _authorize_expiring(store, emulator, expires_in=86_400)
    assert ensure_fresh_token(store, CREDENTIAL, margin_seconds=300).access_token == expiring.access_token
    emulator.admin.set_token_expiry(emulator.seed.app_id, None)
    exchange_code(
        store, CREDENTIAL, emulator.admin.create_auth_code("demo-operator", emulator.seed.advertiser_ids)
    )
    long_lived = repos.get_credential(store, CREDENTIAL)
    assert long_lived.refresh_token is None
    assert long_lived.token_expires_at is None
    assert ensure_fresh_token(store, CREDENTIAL, margin_seconds=10**9).access_token == long_lived.access_token


def test_expired_refresh_token_asks_to_reauthorize(store: Store, emulator: EmulatorServer) -> None:
    _authorize_expiring(store, emulator, expires_in=120)
    emulator.admin.advance_clock(366 * 86_400)  # past the refresh token's year (ref §4.4)
    with pytest.raises(AuthenticationError) as caught:
        ensure_fresh_token(store, CREDENTIAL)
    assert caught.value.resolution_key == "token_expired"
    assert f"reauthorize {CREDENTIAL}" in str(caught.value)
