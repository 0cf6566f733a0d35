"""OAuth authorize / reauthorize / revoke against the emulator's consent page, the CLI as a real subprocess.

The browser is played by httpx2: GET the consent page, POST its form as a browser would, then follow the
302 to the CLI's loopback receiver. State tampering, expiry and replay, and a reused auth code, are refused.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from pydantic import SecretStr

from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace
from ttsync.config.models import Credential
from ttsync.destinations.tiktok.oauth import AuthorizeFlow, CredentialFlowError, StateError, exchange_code
from ttsync.destinations.tiktok.oauth.receiver import Callback, parse_callback
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import Store, repos

CREDENTIAL = "tiktok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workspace(tmp_path: Path, emulator: EmulatorServer) -> Workspace:
    """A workspace holding credential `tiktok` for the emulator's demo app, without a token yet."""
    init_workspace(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    seed = emulator.seed
    with ws.open_store() as store:
        repos.save_credential(
            store,
            Credential(
                name=CREDENTIAL,
                app_id=seed.app_id,
                app_secret=SecretStr(seed.app_secret),
                redirect_uri=f"http://127.0.0.1:{_free_port()}/callback",
                environment="sandbox",
                sandbox_base_url=emulator.base_url,
            ),
        )
    return ws


def _env(ws: Workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}
    return env | {"TTSYNC_WORKSPACE": str(ws.root), "COLUMNS": "200"}


def _start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ttsync", "credentials", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(ws),
    )


def _read_url(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "/portal/auth?" in line:
            return line.strip(), seen
    proc.kill()
    raise AssertionError(f"no authorization URL printed: {seen}")


def _consent(url: str, user: str = "demo-operator") -> str:
    """Play the browser on the consent page: returns the Location TikTok redirects to."""
    with httpx2.Client(timeout=10) as http:
        page = http.get(url)
        assert page.status_code == 200
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page.text)
        }
        users = {
            label: uid
            for uid, label in re.findall(r'name="user_id" value="(\d+)"[^>]*> ([\w-]+) ', page.text)
        }
        assert user in users, page.text
        action = str(page.url.copy_with(path="/portal/auth", query=None))
        answer = http.post(action, data=fields | {"user_id": users[user], "confirm": "yes"})
        assert answer.status_code == 302
        return answer.headers["location"]


def _follow(location: str) -> httpx2.Response:
    """GET the redirect on the loopback receiver, waiting briefly for it to start listening."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return httpx2.get(location, timeout=30)
        except httpx2.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_authorize_end_to_end_through_consent_page(workspace: Workspace, emulator: EmulatorServer) -> None:
    proc = _start(workspace, "authorize", CREDENTIAL, "--no-browser", "--timeout", "60", "--json")
    url, before = _read_url(proc)
    assert url.startswith(emulator.root_url + "/portal/auth?")
    assert f"app_id={emulator.seed.app_id}" in url
    location = _consent(url)
    code = parse_callback(location).auth_code
    assert code is not None
    landed = _follow(location)
    assert landed.status_code == 200
    assert "stored the token" in landed.text
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["ok"] is True
    assert sorted(result["advertiser_ids"]) == sorted(emulator.seed.advertiser_ids)

    with workspace.open_store() as store:
        credential = repos.get_credential(store, CREDENTIAL)
    assert credential.access_token is not None
    token = credential.access_token.get_secret_value()
    assert sorted(credential.advertiser_ids) == sorted(emulator.seed.advertiser_ids)
    # The stored token works, and nothing secret was printed or written in clear.
    reached = httpx2.get(
        emulator.base_url + "oauth2/advertiser/get/",
        params={"app_id": emulator.seed.app_id, "secret": emulator.seed.app_secret},
        headers={"Access-Token": token},
    ).json()
    assert reached["code"] == 0
    _no_secrets("".join(before) + out + err + landed.text, token, emulator.seed.app_secret, code)
    for path in workspace.state_dir.iterdir():
        if path.is_file():
            _no_secrets(path.read_bytes().decode("latin-1"), token, emulator.seed.app_secret)


def test_tampered_state_is_refused_and_nothing_stored(workspace: Workspace) -> None:
    proc = _start(workspace, "authorize", CREDENTIAL, "--no-browser", "--timeout", "60")
    url, _ = _read_url(proc)
    location = _consent(url)
    state = parse_callback(location).state
    assert state is not None
    payload, mac = state.split(".")
    forged = payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    landed = _follow(location.replace(state, forged))
    assert landed.status_code == 400
    with workspace.open_store() as store:
        assert repos.get_credential(store, CREDENTIAL).access_token is None
    # A forged answer does not end the flow (anyone local could send one): the real redirect still works.
    assert _follow(location).status_code == 200
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "bad signature" in err


def test_loopback_ignores_errors_and_codes_without_the_signed_state(workspace: Workspace) -> None:
    proc = _start(workspace, "authorize", CREDENTIAL, "--no-browser", "--timeout", "60", "--json")
    url, _ = _read_url(proc)
    location = _consent(url)
    receiver = location.split("?", 1)[0]
    # Another local process tries to end the waiting flow: an error or a code, without a valid state.
    for query in ("error=access_denied", "error=access_denied&state=forged.state", "auth_code=x&state=a.b"):
        refused = _follow(f"{receiver}?{query}")
        assert refused.status_code == 400
        assert "still waiting" in refused.text
    assert proc.poll() is None  # still waiting
    assert _follow(location).status_code == 200
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out)["ok"] is True


def test_paste_without_state_is_refused(workspace: Workspace, emulator: EmulatorServer) -> None:
    for pasted in ("{code}", "http://127.0.0.1:1/callback?auth_code={code}&code={code}"):
        proc = _start(workspace, "authorize", CREDENTIAL, "--paste", "--json")
        _read_url(proc)
        code = emulator.admin.create_auth_code("demo-operator", emulator.seed.advertiser_ids)
        out, _err = proc.communicate(pasted.format(code=code) + "\n", timeout=30)
        assert proc.returncode == 1, out
        assert "state" in json.loads(out)["error"]
        with workspace.open_store() as store:
            assert repos.get_credential(store, CREDENTIAL).access_token is None


def test_paste_redirect_address(workspace: Workspace, emulator: EmulatorServer) -> None:
    proc = _start(workspace, "authorize", CREDENTIAL, "--paste", "--json")
    url, _ = _read_url(proc)
    location = _consent(url)
    out, err = proc.communicate(location + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert sorted(json.loads(out)["advertiser_ids"]) == sorted(emulator.seed.advertiser_ids)


def test_reauthorize_then_revoke(workspace: Workspace, emulator: EmulatorServer) -> None:
    first = _start(workspace, "authorize", CREDENTIAL, "--paste", "--json")
    _first_out, _ = first.communicate(_consent(_read_url(first)[0]) + "\n", timeout=30)
    assert first.returncode == 0
    with workspace.open_store() as store:
        old = repos.get_credential(store, CREDENTIAL).access_token
    assert old is not None
    old_token = old.get_secret_value()

    again = _start(workspace, "reauthorize", CREDENTIAL, "--paste")
    again_out, again_err = again.communicate(_consent(_read_url(again)[0]) + "\n", timeout=30)
    assert again.returncode == 0, again_err
    assert "authorized" in again_out
    with workspace.open_store() as store:
        new = repos.get_credential(store, CREDENTIAL)
    assert new.access_token is not None
    new_token = new.access_token.get_secret_value()
    assert new_token != old_token
    assert new.redirect_uri is not None  # settings kept

    revoked = subprocess.run(
        [sys.executable, "-m", "ttsync", "credentials", "revoke", CREDENTIAL, "--json"],
        capture_output=True, text=True, env=_env(workspace), timeout=60, check=False,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert sorted(json.loads(revoked.stdout)["advertiser_ids_revoked"]) == sorted(
        emulator.seed.advertiser_ids
    )
    _no_secrets(revoked.stdout + revoked.stderr + again_out + again_err, new_token, emulator.seed.app_secret)
    with workspace.open_store() as store:
        assert repos.get_credential(store, CREDENTIAL).access_token is None
    answer = httpx2.get(
        emulator.base_url + "oauth2/advertiser/get/",
        params={"app_id": emulator.seed.app_id, "secret": emulator.seed.app_secret},
        headers={"Access-Token": new_token},
    ).json()
    assert answer["code"] == 40105


def _flow(ws: Workspace, store: Store) -> AuthorizeFlow:
    return AuthorizeFlow(store, ws.state_dir, CREDENTIAL)


def test_replayed_state_is_refused(workspace: Workspace, emulator: EmulatorServer) -> None:
    advertisers = emulator.seed.advertiser_ids
    with workspace.open_store() as store:
        flow = _flow(workspace, store)
        first_code = emulator.admin.create_auth_code("demo-operator", advertisers)
        flow.complete(Callback(first_code, flow.state))
        stored = repos.get_credential(store, CREDENTIAL).access_token
        assert stored is not None
        token = stored.get_secret_value()
        # A second redirect with the same state, even carrying a fresh valid code, is refused.
        second_code = emulator.admin.create_auth_code("demo-analyst", advertisers, role="Analyst")
        with pytest.raises(StateError) as caught:
            flow.complete(Callback(second_code, flow.state))
        assert caught.value.reason == "replayed"
        after = repos.get_credential(store, CREDENTIAL).access_token
        assert after is not None
        assert after.get_secret_value() == token


def test_expired_state_is_refused(workspace: Workspace, emulator: EmulatorServer) -> None:
    with workspace.open_store() as store:
        flow = _flow(workspace, store)
        old_state = flow.signer.issue(CREDENTIAL, ttl_seconds=60, now=time.time() - 120)
        code = emulator.admin.create_auth_code("demo-operator", emulator.seed.advertiser_ids)
        with pytest.raises(StateError) as caught:
            flow.complete(Callback(code, old_state))
        assert caught.value.reason == "expired"
        assert repos.get_credential(store, CREDENTIAL).access_token is None


def test_state_for_another_credential_or_workspace_is_refused(
    workspace: Workspace, emulator: EmulatorServer, tmp_path: Path
) -> None:
    with workspace.open_store() as store:
        flow = _flow(workspace, store)
        other_credential_state = flow.signer.issue("someone-else")
        with pytest.raises(StateError) as caught:
            flow.complete(Callback("x", other_credential_state))
        assert caught.value.reason == "wrong_credential"
        foreign = type(flow.signer)(tmp_path / "elsewhere").issue(CREDENTIAL)
        with pytest.raises(StateError) as caught:
            flow.complete(Callback("x", foreign))
        assert caught.value.reason == "bad_signature"
        with pytest.raises(StateError):
            flow.complete(Callback("x", "not-a-state"))


def test_used_auth_code_is_refused(workspace: Workspace, emulator: EmulatorServer) -> None:
    code = emulator.admin.create_auth_code("demo-operator", emulator.seed.advertiser_ids)
    with workspace.open_store() as store:
        exchange_code(store, CREDENTIAL, code)
        second = _flow(workspace, store)  # a fresh, valid state: only the code is stale
        with pytest.raises(CredentialFlowError) as caught:
            second.complete(Callback(code, second.state))
    assert "40110" in str(caught.value)
    assert "single-use" in str(caught.value)
    assert code not in str(caught.value)
    assert caught.value.resolution_key == "invalid_credentials"


def test_parse_callback_reads_auth_code_then_code() -> None:
    assert parse_callback("http://127.0.0.1:1/cb?code=c1&state=s").auth_code == "c1"
    both = parse_callback("http://127.0.0.1:1/cb?auth_code=a1&code=c1&state=s")
    assert (both.auth_code, both.state) == ("a1", "s")
    assert parse_callback("  bare-code \n") == Callback("bare-code", None)
    assert "a1" not in repr(both)
