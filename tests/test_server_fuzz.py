"""Fuzz the server's OpenAPI with schemathesis against a real `ttsync serve`: generated requests to every
endpoint (a few examples each) must never get a 5xx, and every answer must match the documented schema
(problem documents included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from server_env import Server, add_admin, running_server, server_environ
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import load_config

SECRETS = {
    "TTSYNC_APP_SECRET": "app-secret-for-tests",
    "TTSYNC_ACCESS_TOKEN": "token-for-tests",
    "TTSYNC_SANDBOX_URL": "http://127.0.0.1:9/open_api/v1.3/",  # nothing listens: runs fail fast
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("fuzz") / "ws"
    workspace = init_workspace(root, sample=True, rows=100).workspace
    with workspace.open_store() as store:
        apply_config(store, load_config(workspace.config_path, environ=SECRETS))
    environ = server_environ(SECRETS)
    add_admin(root, environ)
    with running_server(root, environ, "--workers", "1", "--tick", "5") as server:
        client, csrf = server.login()
        try:
            token = client.post("/api/tokens", json={"label": "fuzz"}, headers={"X-CSRF-Token": csrf}).json()[
                "token"
            ]
        finally:
            client.close()
        yield server, str(token)


def test_no_server_errors_and_answers_match_the_schema(fuzz_server: tuple[Server, str]) -> None:
    server, token = fuzz_server
    api = schemathesis.openapi.from_url(server.url + "/api/openapi.json")
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # an Err is a part of the schema schemathesis cannot read
        operations.append(result.ok())
    assert len(operations) >= 30  # every endpoint group is in the schema
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=3,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=server.url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
                checks=[not_a_server_error, response_schema_conformance],
            )
            statuses.append(response.status_code)

        check()
    assert len(statuses) >= len(operations)
    assert any(400 <= code < 500 for code in statuses)  # bad input was generated and refused
    assert any(200 <= code < 300 for code in statuses)
