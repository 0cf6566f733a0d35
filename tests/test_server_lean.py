"""The fast path of the API's two busiest reads (server/hot.py, the lean queries of app/queries.py, orjson
answers) against what it replaces: the pydantic models' JSON, and FastAPI's own routes on the same app. In
process (FastAPI's TestClient on the real app, a real SQLite store and the emulator's sample workspace)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from audience_env import ORCH, Env, make_env
from server_env import ADMIN_PASSWORD
from ttsync.app import accounts, queries
from ttsync.emulator.embedded import EmulatorServer
from ttsync.server.app import ServerConfig, create_app
from ttsync.server.hot import HotReads
from ttsync.server.jsonout import json_response
from ttsync.store import repos, schema
from ttsync.store.accounts import get_user
from ttsync.store.records import WorkflowRecord

OTHER = "other-orchestration"  # not configured: visible to every user
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _workflow(index: int, orchestration: str, **values: Any) -> dict[str, Any]:
    at = START - timedelta(minutes=index, microseconds=index % 3)  # some with microseconds 0, some not
    return {"id": uuid.uuid4().hex, "orchestration": orchestration, "kind": "audience", "state": "succeeded",
            "created_at": at, "started_at": at, "finished_at": None, "counts": {"upload": {"added": index}},
            "checkpoint": {}, "error": None} | values  # fmt: skip


@pytest.fixture(scope="module")
def site(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A sample workspace with 60 workflows of varied content, and users of each kind."""
    emulator_server.admin.reset("demo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_env(emulator_server, tmp_path_factory.mktemp("lean") / "ws", monkeypatch, rows=300)
        rows = [_workflow(i, ORCH if i % 2 else OTHER) for i in range(56)]  # more than a default page
        rows += [
            _workflow(
                40, OTHER, state="failed", error={"message": "Zürich → 東京", "resolution": "rate_limited"}
            ),
            _workflow(61, OTHER, counts={"ratio": math.nan, "big": 2**53 + 1, "nested": [1.5, None, True]}),
            _workflow(62, OTHER, state="running", checkpoint={"offset": 12, "files": ["a", "b"]}),
            _workflow(63, ORCH, kind="events", finished_at=START),
        ]
        tasks = [{"workflow_id": rows[-2]["id"], "name": name, "position": position, "state": "succeeded",
                  "attempts": 1, "started_at": START, "finished_at": START, "counts": {"rows": position},
                  "checkpoint": {}, "error": None} for position, name in enumerate(("query", "prepare", "upload"))]  # fmt: skip
        with env.store.engine.begin() as conn:
            conn.execute(sa.insert(schema.workflows), rows)
            conn.execute(sa.insert(schema.tasks), tasks)
        for name, role, restricted in (("viewer", "viewer", False), ("restricted", "viewer", True)):
            accounts.add_user(env.store, name, ADMIN_PASSWORD, role, restricted_pii=restricted, actor="test")
        try:
            yield env
        finally:
            env.store.close()


@pytest.fixture(scope="module")
def clients(site: Env) -> Iterator[tuple[TestClient, TestClient]]:
    """The app as served, and the same app without its fast path (FastAPI's routes answer everything)."""
    fast = create_app(site.workspace, site.store, ServerConfig(), background_work=False)
    plain = create_app(site.workspace, site.store, ServerConfig(), background_work=False)
    # Starlette builds the middleware stack from this list at the first request.
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not cast(Any, HotReads)]
    with (
        TestClient(fast, base_url="http://127.0.0.1") as a,
        TestClient(plain, base_url="http://127.0.0.1") as b,
    ):
        yield a, b


def _token(site: Env, name: str) -> tuple[dict[str, str], str]:
    user = get_user(site.store, name)
    token, item = accounts.create_token(site.store, user, "lean", None, actor="test")
    return {"Authorization": f"Bearer {token}"}, item.id


def _body(content: Any) -> Any:
    """`content` as the server writes it, read back."""
    return json.loads(bytes(json_response(content).body))


def _model_json(value: Any, kind: Any) -> Any:
    return json.loads(TypeAdapter(kind).dump_json(value))


def test_lean_rows_serialize_as_the_models_do(site: Env) -> None:
    store = site.store
    filters: list[dict[str, Any]] = [
        {}, {"limit": 7, "offset": 3}, {"orchestration": OTHER}, {"state": "failed"},
        {"exclude_orchestrations": [ORCH], "limit": 500}, {"orchestration": "none-such"},
    ]  # fmt: skip
    for options in filters:
        lean = _body(queries.workflow_page_rows(store, **options))
        models = _model_json(repos.page_workflows(store, **options), list[WorkflowRecord])
        assert lean == models, options
    page = _body(queries.workflow_page_rows(store, limit=500))
    assert any("ratio" in row["counts"] and row["counts"]["ratio"] is None for row in page)  # NaN: null
    for row in repos.page_workflows(store, limit=500):
        view = queries.workflow_view(store, row.id[:12])  # by a unique prefix
        shown = _body(view["workflow"])
        assert shown == _model_json(queries.show_workflow(store, row.id), WorkflowRecord)
    failed = _body(queries.workflow_page_rows(store, state="failed"))
    assert failed[0]["error"]["message"] == "Zürich → 東京"


def test_the_fast_path_answers_as_fastapis_routes(site: Env, clients: tuple[TestClient, TestClient]) -> None:
    fast, plain = clients
    viewer, _ = _token(site, "viewer")
    restricted, _ = _token(site, "restricted")
    some = repos.page_workflows(site.store, limit=500)
    hidden_id = next(w.id for w in some if w.orchestration == ORCH)
    paths = [
        "/api/workflows", "/api/workflows?limit=5&offset=2", "/api/workflows?state=failed&orchestration=" + OTHER,
        "/api/workflows?limit=0", "/api/workflows?limit=501", "/api/workflows?limit=+5", "/api/workflows?limit=x",
        "/api/workflows?offset=10000001", "/api/workflows?state=" + "s" * 33, "/api/workflows?limit=3&limit=4",
        "/api/workflows?unknown=1&limit=2", f"/api/workflows/{some[0].id}", f"/api/workflows/{some[1].id[:8]}",
        f"/api/workflows/{hidden_id}", "/api/workflows/0000ffff", "/api/workflows/abc", "/api/workflows/ABCDEF12",
    ]  # fmt: skip
    for headers in (viewer, restricted, {"Authorization": "Bearer nope"}, {}):
        for path in paths:
            got, expected = fast.get(path, headers=headers), plain.get(path, headers=headers)
            assert (got.status_code, got.json()) == (expected.status_code, expected.json()), (path, headers)
            assert got.headers["content-type"] == expected.headers["content-type"]
            assert got.headers["cache-control"] == "no-store"  # the metrics middleware's headers too
            assert got.headers["x-content-type-options"] == "nosniff"
    # What the paths above exercised: pages, the PII rule, refusals (200, 404, 422, 401 all seen).
    assert fast.get(f"/api/workflows/{hidden_id}", headers=viewer).status_code == 200
    assert fast.get(f"/api/workflows/{hidden_id}", headers=restricted).status_code == 404
    listed = {w["orchestration"] for w in fast.get("/api/workflows?limit=500", headers=restricted).json()}
    assert listed == {OTHER}
    assert fast.get("/api/workflows?limit=0", headers=viewer).status_code == 422
    assert fast.get("/api/workflows", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_revoking_a_token_or_disabling_its_user_takes_effect_on_the_next_request(
    site: Env, clients: tuple[TestClient, TestClient]
) -> None:
    fast, _ = clients
    accounts.add_user(site.store, "leaver", ADMIN_PASSWORD, "viewer", actor="test")
    for change in ("revoke", "disable"):
        if change == "disable":
            accounts.set_disabled(site.store, "leaver", False, actor="test")
        headers, token_id = _token(site, "leaver")
        for path in ("/api/workflows", f"/api/workflows/{repos.page_workflows(site.store)[0].id}"):
            assert fast.get(path, headers=headers).status_code == 200
        # As `ttsync users` in another process would: straight in the store, nothing told to this server.
        if change == "revoke":
            accounts.revoke_token(site.store, token_id, actor="test")
        else:
            accounts.set_disabled(site.store, "leaver", True, actor="test")
        for path in ("/api/workflows", f"/api/workflows/{repos.page_workflows(site.store)[0].id}"):
            answer = fast.get(path, headers=headers)
            assert answer.status_code == 401, (change, path)
            assert answer.json()["resolution"] == "not_authenticated"
