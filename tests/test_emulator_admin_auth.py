"""The emulator's admin API is guarded (token, loopback Host, no cross-site, JSON writes); ids never repeat
across restarts unless asked; its state file is private."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx2
import pytest

from ttsync.emulator.embedded import EmulatorServer, RawApi


def _create_audience(emu: EmulatorServer, name: str) -> str:
    seed = emu.seed
    with RawApi(emu, seed.operator_token) as api:
        body = {"advertiser_id": seed.advertiser_ids[0], "custom_audience_name": name}
        return str(api.post("segment/audience/", body)["data"]["audience_id"])


def test_admin_api_needs_the_admin_token(emulator: EmulatorServer) -> None:
    root = emulator.root_url + "/_emulator/"
    token = emulator.seed.admin_token
    assert httpx2.get(root + "seed").status_code == 401
    assert httpx2.get(root + "seed", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx2.post(root + "reset", json={"seed": "empty"}).status_code == 401
    ok = httpx2.get(root + "seed", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert ok.json()["admin_token"] == token
    # Nothing was reset by the refused call: the demo advertisers are still there.
    assert emulator.admin.state()["advertisers"]


def test_admin_api_refuses_foreign_host_and_origin(emulator: EmulatorServer) -> None:
    root = emulator.root_url + "/_emulator/"
    auth = {"Authorization": f"Bearer {emulator.seed.admin_token}"}
    # A DNS-rebinding page reaches 127.0.0.1 under its own host name.
    assert httpx2.get(root + "seed", headers=auth | {"Host": "evil.example"}).status_code == 403
    assert httpx2.get(root + "seed", headers=auth | {"Host": f"localhost:{emulator.port}"}).status_code == 200
    cross = auth | {"Origin": "https://evil.example"}
    assert httpx2.post(root + "reset", json={"seed": "empty"}, headers=cross).status_code == 403
    local = auth | {"Origin": f"http://127.0.0.1:{emulator.port}"}
    assert httpx2.get(root + "seed", headers=local).status_code == 200


def test_admin_writes_need_json(emulator: EmulatorServer) -> None:
    root = emulator.root_url + "/_emulator/"
    auth = {"Authorization": f"Bearer {emulator.seed.admin_token}"}
    form = httpx2.post(root + "reset", data={"seed": "empty"}, headers=auth)
    assert form.status_code == 415
    text = httpx2.post(
        root + "reset", content='{"seed": "empty"}', headers=auth | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    assert emulator.admin.state()["advertisers"]  # still the demo world
    # A write without a body needs no content type.
    assert httpx2.delete(root + "faults", headers=auth).status_code == 200


def test_restart_without_state_hands_out_new_audience_ids() -> None:
    with EmulatorServer() as first:
        before = _create_audience(first, "First life")
        token = first.seed.admin_token
    with EmulatorServer() as second:
        after = _create_audience(second, "Second life")
        assert second.seed.admin_token != token  # per process
    assert before != after


def test_reset_hands_out_new_ids_unless_deterministic(emulator: EmulatorServer) -> None:
    first = _create_audience(emulator, "One")
    emulator.admin.reset("demo")
    assert _create_audience(emulator, "One") != first
    emulator.admin.reset("demo", deterministic_ids=True)
    fixed = _create_audience(emulator, "One")
    emulator.admin.reset("demo", deterministic_ids=True)
    assert _create_audience(emulator, "One") == fixed
    emulator.admin.reset("demo", deterministic_ids=False)


def test_deterministic_ids_repeat_across_processes() -> None:
    made = []
    for _ in range(2):
        with EmulatorServer(deterministic_ids=True) as emu:
            made.append(_create_audience(emu, "Same"))
    assert made[0] == made[1]


@pytest.mark.skipif(not hasattr(stat, "S_IMODE"), reason="POSIX permissions")
def test_state_file_is_private(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.sqlite"
    with EmulatorServer(state_file=state_file) as emu:
        _create_audience(emu, "Private")
    for path in tmp_path.iterdir():
        if path.name.startswith("emulator.sqlite"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
