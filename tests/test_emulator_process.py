"""The emulator as a process: `ttsync emulator serve` and `--state` persistence across restarts."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from ttsync.emulator.embedded import SEED_KEYS, EmulatorServer, RawApi


# A bound for a hung emulator, not a performance check: a loaded 2-core machine took over 20 s to start one.
def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "emulator did not write its seed file"
        time.sleep(0.05)


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    seed_out = tmp_path / "seed.json"
    seed_out.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ttsync",
            "emulator",
            "serve",
            "--port",
            "0",
            "--seed",
            "demo",
            "--seed-out",
            str(seed_out),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(seed_out, proc)
    return proc, json.loads(seed_out.read_text())


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    return out


def test_serve_writes_seed_out_and_answers_with_the_envelope(tmp_path: Path) -> None:
    proc, seed = _serve(tmp_path)
    try:
        assert list(seed) == list(SEED_KEYS)
        assert isinstance(seed["advertiser_ids"], list)
        base_url = str(seed["base_url"])
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/open_api/v1.3/")
        assert not base_url.startswith("http://127.0.0.1:0/")
        response = httpx2.get(
            base_url + "oauth2/advertiser/get/",
            params={"app_id": seed["app_id"], "secret": seed["app_secret"]},
            headers={"Access-Token": str(seed["operator_token"])},
        )
        body = response.json()
        assert set(body) == {"code", "message", "request_id", "data"}
        assert body["code"] == 0
    finally:
        out = _stop(proc)
    assert out.count("\n") == 2
    assert f"listening on {base_url}" in out
    assert f"admin token (Authorization: Bearer ...): {seed['admin_token']}" in out


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.sqlite"
    email = hashlib.sha256(b"kept@example.com").hexdigest()
    with EmulatorServer(state_file=state_file) as emu:
        seed = emu.seed
        adv = seed.advertiser_ids[0]
        with RawApi(emu, seed.operator_token) as api:
            aud = api.post("segment/audience/", {"advertiser_id": adv, "custom_audience_name": "Kept"})[
                "data"
            ]["audience_id"]
            body = {
                "advertiser_ids": [adv],
                "id_schema": ["EMAIL_SHA256"],
                "batch_data": [[{"id": email, "audience_ids": [aud]}]],
            }
            assert api.post("segment/mapping/", body)["code"] == 0
            event = {"event": "Purchase", "event_time": 1_700_000_000, "event_id": "kept-1"}
            track = {"event_source": "offline", "event_source_id": seed.event_set_id, "data": [event]}
            assert api.post("event/track/", track)["code"] == 0
        emu.admin.revoke_token(seed.analyst_token)
        emu.admin.advance_clock(100)
    with EmulatorServer(state_file=state_file) as again:
        per_process = {"base_url": "", "admin_token": ""}  # the admin token is per process
        assert again.seed.to_dict() | per_process == seed.to_dict() | per_process
        assert again.admin.audience_members(aud) == {"EMAIL_SHA256": {email}}
        assert [e["event_id"] for e in again.admin.events(seed.event_set_id)] == ["kept-1"]
        assert again.admin.state()["clock_offset"] >= 100
        with RawApi(again, seed.operator_token) as api:
            # The dedupe key survived too: the same event is dropped as a duplicate.
            assert api.post("event/track/", track)["code"] == 0
            assert len(again.admin.events(seed.event_set_id)) == 1
        with RawApi(again, seed.analyst_token) as analyst:
            assert analyst.get("dmp/custom_audience/list/", advertiser_id=adv)["code"] == 40105
        # Keys older than the 48-hour window are forgotten, in the state file too.
        again.admin.advance_clock(49 * 3600)
        with RawApi(again, seed.operator_token) as api:
            later = {"event": "Purchase", "event_time": 1_700_000_000, "event_id": "later-1"}
            assert api.post("event/track/", track | {"data": [later]})["code"] == 0
        assert again.admin.state()["events"]["dedupe_keys"] == 1
    with EmulatorServer(state_file=state_file) as third:
        assert third.admin.state()["events"]["dedupe_keys"] == 1


def test_cli_state_file_keeps_audiences(tmp_path: Path) -> None:
    state_file = tmp_path / "cli.sqlite"
    proc, seed = _serve(tmp_path, "--state", str(state_file))
    try:
        with httpx2.Client(
            base_url=str(seed["base_url"]), headers={"Access-Token": str(seed["operator_token"])}
        ) as http:
            body = {"advertiser_id": seed["advertiser_ids"][0], "custom_audience_name": "Across restarts"}
            aud = http.post("segment/audience/", json=body).json()["data"]["audience_id"]
    finally:
        _stop(proc)
    proc, seed = _serve(tmp_path, "--state", str(state_file))
    try:
        with httpx2.Client(
            base_url=str(seed["base_url"]).replace("/open_api/v1.3/", ""),
            headers={"Authorization": f"Bearer {seed['admin_token']}"},
        ) as http:
            assert http.get(f"/_emulator/audiences/{aud}").json()["name"] == "Across restarts"
    finally:
        _stop(proc)


def test_serve_json_start_line_and_private_seed_file(tmp_path: Path) -> None:
    proc, seed = _serve(tmp_path, "--json")
    try:
        assert (tmp_path / "seed.json").stat().st_mode & 0o777 == 0o600
    finally:
        out = _stop(proc)
    start = json.loads(out.strip())
    assert start == {
        "base_url": seed["base_url"],
        "admin_url": str(seed["base_url"]).replace("/open_api/v1.3/", "/_emulator/"),
        "admin_token": seed["admin_token"],
        "variants": [],
    }


def test_only_loopback_hosts_skip_the_exposure_warning() -> None:
    from ttsync.cli.emulator import _is_loopback

    assert _is_loopback("127.0.0.1")
    assert _is_loopback("localhost")
    assert _is_loopback("::1")
    assert not _is_loopback("0.0.0.0")
    assert not _is_loopback("192.168.1.5")
