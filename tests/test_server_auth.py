"""Every access rule of the server, per endpoint group, against a real `ttsync serve` process: no
authentication, wrong role, restricted-PII and admin-only destinations, cookie writes without the CSRF
token, expired sessions, login lockout, revoked and scoped API tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from server_env import ADMIN_PASSWORD, Server, running_server, server_environ, ttsync
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import load_config

SECRETS = {
    "TTSYNC_APP_SECRET": "app-secret-for-tests",
    "TTSYNC_ACCESS_TOKEN": "token-for-tests",
    "TTSYNC_SANDBOX_URL": "http://127.0.0.1:9/open_api/v1.3/",  # nothing listens: no run reaches TikTok here
    "TTSYNC_SESSION_SECONDS": "6",
    "TTSYNC_LOGIN_MAX_FAILURES": "3",
}
# One read per endpoint group (each needs at least `viewer`, except users and audit: `admin`).
READS = ["/api/credentials", "/api/sources", "/api/destinations", "/api/templates", "/api/orchestrations",
         "/api/workflows", "/api/notifications", "/api/audiences", "/api/tokens", "/api/schedules", "/api/me",
         "/api/events/daily", "/api/audiences/high-value-customers/history", "/api/segments", "/api/campaigns",
         "/api/campaigns/spring-offer/report"]  # fmt: skip
ADMIN_READS = ["/api/users", "/api/audit", "/api/suppression", "/api/forget/report"]
# One write per group, with the lowest role allowed.
WRITES = [
    ("/api/credentials", {"name": "c2", "app_id": "1"}, "admin"),
    ("/api/sources", {"name": "s2", "kind": "duckdb", "path": "warehouse.duckdb"}, "admin"),
    ("/api/orchestrations/high-value-customers/runs", None, "operator"),
    ("/api/users", {"name": "u9", "password": "long enough pw", "role": "viewer"}, "admin"),
    ("/api/segments", {"name": "s9", "source": "warehouse", "key_column": "amperity_id",
                       "query": "SELECT amperity_id FROM Merged_Customers"}, "operator"),
    ("/api/campaigns/spring-offer/plan", None, "operator"),
    ("/api/campaigns/spring-offer/runs", None, "operator"),
    ("/api/suppression", {"name": "optouts", "type": "EMAIL", "hashes": ["0" * 64]}, "admin"),
    ("/api/forget", {"emails": ["forget.me@example.com"]}, "admin"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("server") / "ws"
    workspace = init_workspace(root, sample=True, rows=200).workspace
    store = workspace.open_store()
    apply_config(store, load_config(workspace.config_path, environ=SECRETS))
    store.close()
    environ = server_environ(SECRETS)
    for name, role, *extra in [("admin", "admin"), ("op", "operator"), ("view", "viewer"),
                               ("rop", "operator", "--restricted-pii"), ("victim", "viewer")]:  # fmt: skip
        ttsync(
            "users",
            "add",
            name,
            "--role",
            role,
            *extra,
            "--password-env",
            "ADMIN_PASSWORD",
            "-w",
            str(root),
            env=environ,
        )
    with running_server(root, environ, "--workers", "1", "--tick", "0.5") as running:
        yield running


def _token(server: Server, user: str, role: str | None = None) -> str:
    client, csrf = server.login(user)
    try:
        answer = client.post("/api/tokens", json={"label": "t", "role": role}, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])
    finally:
        client.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", [*READS, *ADMIN_READS])
def test_unauthenticated_reads_are_refused(server: Server, path: str) -> None:
    answer = httpx.get(server.url + path)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["resolution"] == "not_authenticated"


@pytest.mark.parametrize(("path", "body", "role"), WRITES)
def test_unauthenticated_and_wrong_role_writes_are_refused(
    server: Server, path: str, body: object, role: str
) -> None:
    assert httpx.post(server.url + path, json=body).status_code == 401
    below = {"admin": "op", "operator": "view"}[role]
    answer = httpx.post(server.url + path, json=body, headers=_bearer(_token(server, below)))
    assert answer.status_code == 403
    assert answer.json()["resolution"] == "forbidden"


@pytest.mark.parametrize(("path", "body", "role"), WRITES)
def test_cookie_writes_need_the_csrf_token(server: Server, path: str, body: object, role: str) -> None:
    client, _csrf = server.login("admin")
    try:
        answer = client.post(path, json=body)
        assert answer.status_code == 403
        assert answer.json()["resolution"] == "csrf_failed"
        assert client.post(path, json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    finally:
        client.close()


def test_viewer_reads_every_group(server: Server) -> None:
    headers = _bearer(_token(server, "view"))
    for path in READS:
        assert httpx.get(server.url + path, headers=headers).status_code == 200, path
    for path in ADMIN_READS:
        assert httpx.get(server.url + path, headers=headers).status_code == 403, path
    operator = _bearer(_token(server, "op"))
    assert httpx.get(server.url + "/api/suppression", headers=operator).status_code == 403


def test_restricted_pii_user_does_not_see_or_run_a_destination_that_disallows_it(server: Server) -> None:
    headers = _bearer(_token(server, "rop"))
    names = [d["name"] for d in httpx.get(server.url + "/api/destinations", headers=headers).json()]
    assert "tiktok-audiences" not in names  # allow_restricted_pii: false in the sample
    assert httpx.get(server.url + "/api/destinations/tiktok-audiences", headers=headers).status_code == 404
    history = httpx.get(server.url + "/api/audiences/high-value-customers/history", headers=headers)
    assert history.status_code == 404
    orchestrations = [
        o["name"] for o in httpx.get(server.url + "/api/orchestrations", headers=headers).json()
    ]
    assert "high-value-customers" not in orchestrations
    run = httpx.post(server.url + "/api/orchestrations/high-value-customers/runs", headers=headers)
    assert run.status_code == 404
    # Its campaign (sent through tiktok-audiences) is hidden and refused as its orchestrations are.
    campaigns = [c["name"] for c in httpx.get(server.url + "/api/campaigns", headers=headers).json()]
    assert "spring-offer" not in campaigns
    for method, path in [("GET", "/api/campaigns/spring-offer"), ("POST", "/api/campaigns/spring-offer/runs"),
                         ("POST", "/api/campaigns/spring-offer/plan"), ("GET", "/api/campaigns/spring-offer/report"),
                         ("DELETE", "/api/campaigns/spring-offer")]:  # fmt: skip
        answer = httpx.request(method, server.url + path, headers=headers)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["resolution"] == "object_not_found"
    # ... nor replaced by one through a destination they may see.
    campaign = httpx.get(
        server.url + "/api/campaigns/spring-offer", headers=_bearer(_token(server, "admin"))
    ).json()
    visible = [{"destination": "tiktok-offline-events", "template": "store-purchases"}]
    body = campaign | {"destinations": visible}
    replaced = httpx.post(server.url + "/api/campaigns", json=body, headers=headers)
    assert replaced.status_code == 404, replaced.text
    # The same operator without the mark sees it.
    plain = _bearer(_token(server, "op"))
    assert httpx.get(server.url + "/api/destinations/tiktok-audiences", headers=plain).status_code == 200


KINDS = {"credentials": "sandbox", "sources": "warehouse", "destinations": "tiktok-audiences",
         "templates": "best-profile", "orchestrations": "high-value-customers", "segments": "high-value",
         "campaigns": "spring-offer"}  # fmt: skip


@pytest.mark.parametrize(("kind", "name"), KINDS.items())
def test_every_kind_reads_one_object_and_refuses_deletes_below_its_role(
    server: Server, kind: str, name: str
) -> None:
    viewer = _bearer(_token(server, "view"))
    shown = httpx.get(f"{server.url}/api/{kind}/{name}", headers=viewer)
    assert shown.status_code == 200, shown.text
    assert shown.json()["name"] == name
    assert (
        SECRETS["TTSYNC_ACCESS_TOKEN"] not in shown.text
    )  # a credential answers has_* flags, never a secret
    refused = httpx.delete(f"{server.url}/api/{kind}/{name}", headers=viewer)
    assert refused.status_code == 403
    missing = httpx.delete(
        f"{server.url}/api/{kind}/no-such-{kind}", headers=_bearer(_token(server, "admin"))
    )
    assert missing.status_code == 404
    assert missing.json()["resolution"] == "object_not_found"


def test_restricted_pii_user_can_neither_read_nor_delete_hidden_objects(server: Server) -> None:
    restricted = _bearer(_token(server, "rop"))
    for path in ("/api/templates/best-profile", "/api/orchestrations/high-value-customers"):
        assert httpx.get(server.url + path, headers=restricted).status_code == 404, path
        assert httpx.delete(server.url + path, headers=restricted).status_code == 404, path
    templates = [t["name"] for t in httpx.get(server.url + "/api/templates", headers=restricted).json()]
    assert "best-profile" not in templates
    admin = _bearer(_token(server, "admin"))
    assert (
        httpx.get(server.url + "/api/orchestrations/high-value-customers", headers=admin).status_code == 200
    )


def test_delete_removes_an_unused_object_and_refuses_a_used_one(server: Server) -> None:
    admin = _bearer(_token(server, "admin"))
    source = {"name": "spare-source", "kind": "duckdb", "path": "warehouse.duckdb"}
    assert httpx.post(server.url + "/api/sources", json=source, headers=admin).status_code == 200
    deleted = httpx.delete(server.url + "/api/sources/spare-source", headers=admin)
    assert deleted.json() == {"name": "spare-source", "change": "deleted"}
    assert httpx.get(server.url + "/api/sources/spare-source", headers=admin).status_code == 404
    audit = httpx.get(server.url + "/api/audit?action=source.delete", headers=admin).json()
    assert any(item["target"] == "source:spare-source" for item in audit)
    used = httpx.delete(server.url + "/api/sources/warehouse", headers=admin)  # orchestrations read it
    assert used.status_code == 422
    assert "remove or change those first" in used.json()["detail"]
    segment = httpx.delete(server.url + "/api/segments/high-value", headers=admin)  # spring-offer's audience
    assert segment.status_code == 422
    assert "used by campaign 'spring-offer'" in segment.json()["detail"]


def test_admin_only_destination_refuses_operators(server: Server) -> None:
    admin = _bearer(_token(server, "admin"))
    destination = httpx.get(server.url + "/api/destinations/tiktok-offline-events", headers=admin).json()
    assert (
        httpx.post(
            server.url + "/api/destinations", json=destination | {"admin_only": True}, headers=admin
        ).status_code
        == 200
    )
    try:
        answer = httpx.post(
            server.url + "/api/orchestrations/store-purchases-last-7-days/runs",
            headers=_bearer(_token(server, "op")),
        )
        assert answer.status_code == 403
        assert "admin_only" in answer.json()["detail"]
    finally:
        httpx.post(server.url + "/api/destinations", json=destination, headers=admin)


def test_a_campaign_through_an_admin_only_destination_refuses_operators(server: Server) -> None:
    admin = _bearer(_token(server, "admin"))
    destination = httpx.get(server.url + "/api/destinations/tiktok-audiences", headers=admin).json()
    campaign = httpx.get(server.url + "/api/campaigns/spring-offer", headers=admin).json()
    saved = httpx.post(
        server.url + "/api/destinations", json=destination | {"admin_only": True}, headers=admin
    )
    assert saved.status_code == 200
    operator = _bearer(_token(server, "op"))
    try:
        for method, path, body in [("POST", "/api/campaigns/spring-offer/runs", None),
                                   ("POST", "/api/campaigns/spring-offer/plan", None),
                                   ("POST", "/api/campaigns", campaign | {"name": "copy"}),
                                   ("DELETE", "/api/campaigns/spring-offer", None)]:  # fmt: skip
            answer = httpx.request(method, server.url + path, json=body, headers=operator)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "admin_only" in answer.json()["detail"]
        assert httpx.get(server.url + "/api/campaigns/spring-offer", headers=operator).status_code == 200
    finally:
        httpx.post(server.url + "/api/destinations", json=destination, headers=admin)


def test_expired_session_is_refused(server: Server) -> None:
    client, _ = server.login("view")
    try:
        assert client.get("/api/me").status_code == 200
        cookie = str(client.cookies["ttsync_session"])
        time.sleep(6.5)  # TTSYNC_SESSION_SECONDS=6
        assert client.get("/api/me").status_code == 401  # the browser drops it (Expires)...
        answer = httpx.get(server.url + "/api/me", cookies={"ttsync_session": cookie})
        assert answer.status_code == 401  # ...and the server refuses it if sent anyway
        assert "expired" in answer.json()["detail"]
    finally:
        client.close()


def test_session_cookie_flags(server: Server) -> None:
    answer = httpx.post(server.url + "/api/session", json={"name": "view", "password": ADMIN_PASSWORD})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    forged = httpx.get(server.url + "/api/me", cookies={"ttsync_session": "abc.def"})
    assert forged.status_code == 401


def test_login_lockout_after_repeated_failures_is_logged(server: Server) -> None:
    for _ in range(3):  # TTSYNC_LOGIN_MAX_FAILURES=3
        wrong = httpx.post(server.url + "/api/session", json={"name": "victim", "password": "wrong password"})
        assert wrong.status_code == 401
    right = httpx.post(server.url + "/api/session", json={"name": "victim", "password": ADMIN_PASSWORD})
    assert right.status_code == 401
    assert "locked" in right.json()["detail"]
    audit = httpx.get(
        server.url + "/api/audit?action=user.locked", headers=_bearer(_token(server, "admin"))
    ).json()
    assert [entry["target"] for entry in audit] == ["user:victim"]


def test_revoked_and_scoped_tokens(server: Server) -> None:
    token = _token(server, "admin", role="viewer")
    headers = _bearer(token)
    assert httpx.get(server.url + "/api/credentials", headers=headers).status_code == 200
    assert httpx.post(server.url + "/api/sources", json=WRITES[1][1], headers=headers).status_code == 403
    listed = httpx.get(server.url + "/api/tokens", headers=_bearer(_token(server, "admin"))).json()
    assert all("token_hash" not in item and "token" not in item for item in listed)
    token_id = next(item["id"] for item in listed if item["role"] == "viewer" and item["revoked_at"] is None)
    assert httpx.delete(server.url + f"/api/tokens/{token_id}", headers=headers).status_code == 200
    assert httpx.get(server.url + "/api/credentials", headers=headers).status_code == 401
    assert httpx.get(server.url + "/api/credentials", headers=_bearer("ttsync_made-up")).status_code == 401


def test_public_host_is_refused_without_tls_in_front(server: Server, tmp_path: Path) -> None:
    answer = ttsync(
        "serve", "--host", "0.0.0.0", "-w", str(tmp_path), env=server_environ(SECRETS), check=False
    )
    assert answer.returncode == 2
    assert "--behind-proxy" in "".join(answer.stderr.split())


def test_health_readiness_metrics_and_openapi(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = _until_ready(server)
    assert ready["workers"] == 1
    assert ready["scheduler_leader"] is True
    metrics = httpx.get(server.url + "/metrics").text
    assert 'ttsync_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    assert "ttsync_run_queue" in metrics
    document = httpx.get(server.url + "/api/openapi.json").json()
    assert "/api/workflows/{workflow_id}/events" in document["paths"]
    assert httpx.get(server.url + "/api/docs").status_code == 200


def _until_ready(server: Server) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = httpx.get(server.url + "/readyz")
        if answer.status_code == 200:
            body: dict[str, object] = answer.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"not ready: {answer.text}")


def test_restricted_pii_user_does_not_see_notifications_or_schedules_of_hidden_orchestrations(
    server: Server,
) -> None:
    admin = _bearer(_token(server, "admin"))
    deadline = time.monotonic() + 60
    workflow_id = None
    while workflow_id is None and time.monotonic() < deadline:  # refused (409) while an earlier run is active
        answer = httpx.post(server.url + "/api/orchestrations/high-value-customers/runs", headers=admin)
        workflow_id = answer.json()["workflow_id"] if answer.status_code == 202 else None
        time.sleep(0.3)
    assert workflow_id is not None

    def alerts(headers: dict[str, str]) -> list[str | None]:
        return [
            n["workflow_id"] for n in httpx.get(server.url + "/api/notifications", headers=headers).json()
        ]

    while workflow_id not in alerts(admin) and time.monotonic() < deadline:  # TikTok is unreachable: it fails
        time.sleep(0.3)
    assert workflow_id in alerts(admin)
    restricted = _bearer(_token(server, "rop"))
    assert workflow_id not in alerts(restricted)
    schedules = [s["orchestration"] for s in httpx.get(server.url + "/api/schedules", headers=admin).json()]
    assert "high-value-customers" in schedules
    hidden = [s["orchestration"] for s in httpx.get(server.url + "/api/schedules", headers=restricted).json()]
    assert "high-value-customers" not in hidden


def test_restricted_pii_user_does_not_see_a_hidden_campaigns_runs(server: Server) -> None:
    admin = _bearer(_token(server, "admin"))
    queued = httpx.post(server.url + "/api/campaigns/spring-offer/runs", headers=admin)
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["run_id"]
    assert httpx.get(server.url + f"/api/workflows/{run_id}", headers=admin).status_code == 200
    restricted = _bearer(_token(server, "rop"))  # spring-offer sends through a destination hidden from them
    assert httpx.get(server.url + f"/api/workflows/{run_id}", headers=restricted).status_code == 404
    listed = httpx.get(server.url + "/api/workflows", params={"limit": 500}, headers=restricted).json()
    assert not [w for w in listed if w["orchestration"].split(".")[0] == "spring-offer"]
