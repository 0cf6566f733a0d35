"""`ttsync credentials test`, `ttsync destinations test` and `ttsync doctor` against the emulator (real
subprocesses), including the Analyst case: reported as missing advertiser permissions before any run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace
from ttsync.config.models import Credential, Destination
from ttsync.destinations.tiktok.oauth import Doctor
from ttsync.destinations.tiktok.settings import AudienceSettings, OfflineEventsSettings
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import repos

CREDENTIAL = "tiktok"


def _workspace(
    tmp_path: Path, emu: EmulatorServer, token: str, *, event_set_id: str | None = None
) -> Workspace:
    init_workspace(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    seed = emu.seed
    with ws.open_store() as store:
        repos.save_credential(
            store,
            Credential(
                name=CREDENTIAL,
                app_id=seed.app_id,
                app_secret=SecretStr(seed.app_secret),
                access_token=SecretStr(token),
                advertiser_ids=seed.advertiser_ids,
                environment="sandbox",
                sandbox_base_url=emu.base_url,
            ),
        )
        repos.save_destination(
            store,
            Destination(
                name="audiences",
                kind="audience",
                credential=CREDENTIAL,
                settings=AudienceSettings(advertiser_ids=seed.advertiser_ids).model_dump(exclude_none=True),
            ),
        )
        repos.save_destination(
            store,
            Destination(
                name="offline",
                kind="offline_events",
                credential=CREDENTIAL,
                settings=OfflineEventsSettings(
                    advertiser_id=seed.advertiser_ids[0], event_set_id=event_set_id or seed.event_set_id
                ).model_dump(exclude_none=True),
            ),
        )
    return ws


def _ttsync(ws: Workspace, *args: str) -> tuple[int, Any, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | {
        "TTSYNC_WORKSPACE": str(ws.root)
    }
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", *args, "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def _problems(report: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["resolution"]["key"] for c in report["checks"] if c["status"] == "problem"}


def test_operator_token_passes_every_check(tmp_path: Path, emulator: EmulatorServer) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.operator_token)
    audiences_before = len(emulator.admin.state()["audiences"])
    code, report, text = _ttsync(ws, "doctor")
    assert code == 0, text
    assert report["ok"] is True
    statuses = {(c["subject"], c["check"]): c["status"] for c in report["checks"]}
    assert statuses[("credential tiktok", "token_valid")] == "ok"
    assert statuses[("destination audiences", "write_permission")] == "ok"
    assert statuses[("destination offline", "event_set")] == "ok"
    # The credential's token is checked once even though two destinations use it.
    assert sum(1 for c in report["checks"] if c["check"] == "token_valid") == 1
    # The write probe changed nothing in TikTok.
    assert len(emulator.admin.state()["audiences"]) == audiences_before
    assert emulator.seed.operator_token not in text
    assert emulator.seed.app_secret not in text


def test_analyst_token_is_missing_permissions_before_any_run(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.analyst_token)
    code, report, text = _ttsync(ws, "destinations", "test", "audiences")
    assert code == 1
    assert _problems(report) == {"write_permission": "missing_advertiser_permissions"}
    problem = next(c for c in report["checks"] if c["status"] == "problem")
    assert any("reauthorize tiktok" in step for step in problem["resolution"]["steps"])
    assert all("workflows" not in step for step in problem["resolution"]["steps"])
    # Reading works for an Analyst: the token itself is valid.
    cred_code, cred_report, _ = _ttsync(ws, "credentials", "test", CREDENTIAL)
    assert cred_code == 0
    assert cred_report["ok"] is True
    assert emulator.seed.analyst_token not in text


def test_revoked_token_is_invalid_credentials(tmp_path: Path, emulator: EmulatorServer) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.operator_token)
    emulator.admin.revoke_token(emulator.seed.operator_token)
    code, report, _ = _ttsync(ws, "credentials", "test", CREDENTIAL)
    assert code == 1
    assert _problems(report) == {"token_valid": "invalid_credentials"}


def test_missing_event_set_and_deleted_advertiser(tmp_path: Path, emulator: EmulatorServer) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.operator_token, event_set_id="999999999")
    code, report, _ = _ttsync(ws, "destinations", "test", "offline")
    assert code == 1
    assert _problems(report) == {"event_set": "event_set_not_found"}

    emulator.admin.delete_advertiser(emulator.seed.advertiser_ids[1])
    code, report, _ = _ttsync(ws, "destinations", "test", "audiences")
    assert code == 1
    assert _problems(report) == {"advertiser_reachable": "advertiser_not_found"}


def test_unapproved_advertiser_is_advertiser_not_found(tmp_path: Path, emulator: EmulatorServer) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.operator_token)
    emulator.admin.unapprove_advertiser(emulator.seed.advertiser_ids[0])
    with ws.open_store() as store:
        report = Doctor(store).destination("audiences")
    assert not report.ok
    assert {c.name: c.resolution for c in report.problems} == {"write_permission": "advertiser_not_found"}


@pytest.mark.parametrize("token", [None, "expired"])
def test_token_absent_or_expired_without_refresh(
    tmp_path: Path, emulator: EmulatorServer, token: str | None
) -> None:
    ws = _workspace(tmp_path, emulator, emulator.seed.operator_token)
    with ws.open_store() as store:
        if token is None:
            repos.clear_credential_tokens(store, CREDENTIAL)
            expected = {"token_present": "invalid_credentials"}
        else:
            from datetime import UTC, datetime, timedelta

            repos.update_credential_tokens(
                store,
                CREDENTIAL,
                access_token=emulator.seed.operator_token,
                token_expires_at=datetime.now(UTC) - timedelta(minutes=1),
            )
            expected = {"token_expiry": "token_expired"}
        report = Doctor(store).credential(CREDENTIAL)
    assert {c.name: c.resolution for c in report.problems} == expected
