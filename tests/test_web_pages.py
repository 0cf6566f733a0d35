"""The web UI's pages over plain HTTP, in process (FastAPI's TestClient on the real app, a real SQLite store
and the emulator): every form post's role and CSRF enforcement, and the inline checks of the data template,
orchestration, user and credential forms. The browser flows are in test_web_ui.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from audience_env import ORCH, Env, make_env
from server_env import ADMIN_PASSWORD
from ttsync.app import accounts, audit, background, queries
from ttsync.app.runs import build_run, start_run
from ttsync.config.models import Credential
from ttsync.emulator.embedded import EmulatorServer
from ttsync.errors import NotFoundError
from ttsync.server.app import ServerConfig, create_app
from ttsync.server.web import pages
from ttsync.server.web.credentials import Expiry, token_expiry
from ttsync.store import repos, runqueue
from ttsync.store.runqueue import ScheduleRecord

EVENTS = "store-purchases-last-7-days"
USERS = [("admin", "admin", False), ("operator", "operator", False), ("viewer", "viewer", False),
         ("restricted", "operator", True)]  # fmt: skip
# A real name for each path parameter, so a refusal is the role's and not a 404.
NAMES = {
    "name": ORCH,
    "workflow_id": "abcd1234",
    "action": "retry",
    "notification_id": "1",
    "run_id": "0" * 32,
}
ADMIN_ONLY = {"/ui/destinations", "/ui/destinations/{name}/test", "/ui/credentials", "/ui/users",
              "/ui/credentials/{name}/authorize", "/ui/credentials/{name}/test", "/ui/credentials/{name}/revoke",
              "/ui/users/{name}/role"}  # fmt: skip


@pytest.fixture(scope="module")
def site(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One sample workspace and in-process app for the module (no worker processes: nothing here runs)."""
    emulator_server.admin.reset("demo")  # a fresh demo seed, as the function-scoped `emulator` fixture gives
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_env(emulator_server, tmp_path_factory.mktemp("web") / "ws", monkeypatch, rows=300)
        for name, role, restricted in USERS:
            accounts.add_user(env.store, name, ADMIN_PASSWORD, role, restricted_pii=restricted, actor="test")
        try:
            yield env
        finally:
            env.store.close()


@pytest.fixture(scope="module")
def app_client(site: Env) -> Iterator[TestClient]:
    app = create_app(site.workspace, site.store, ServerConfig(), background_work=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def login(client: TestClient, name: str) -> str:
    """Sign `client` in as `name` through the form; the CSRF token its pages carry."""
    client.cookies.clear()
    answer = client.post("/ui/login", data={"name": name, "password": ADMIN_PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/notifications").text)
    assert match
    return match.group(1)


def post_routes() -> list[str]:
    routes = [r for group in pages.GROUPS for r in group.router.routes]
    paths = [r.path for r in routes if isinstance(r, APIRoute) and "POST" in (r.methods or ())]
    return [p for p in paths if p not in ("/ui/login", "/ui/logout")]


def fill(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: NAMES[m.group(1)], path)


def test_every_post_refuses_a_viewer_and_a_missing_csrf_token(app_client: TestClient) -> None:
    routes = post_routes()
    assert len(routes) >= 16  # every page group's actions are in the list
    csrf = login(app_client, "viewer")
    for path in routes:
        answer = app_client.post(fill(path), data={"csrf_token": csrf}, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "this needs the" in answer.text
    login(app_client, "admin")
    for path in routes:
        for data in ({}, {"csrf_token": "forged"}):
            answer = app_client.post(fill(path), data=data, follow_redirects=False)
            assert answer.status_code == 403, (path, answer.status_code)
            assert "CSRF" in answer.text


def test_an_operator_is_refused_every_admin_action(app_client: TestClient) -> None:
    routes = set(post_routes())
    assert routes >= ADMIN_ONLY
    csrf = login(app_client, "operator")
    for path in sorted(ADMIN_ONLY):
        answer = app_client.post(fill(path), data={"csrf_token": csrf}, follow_redirects=False)
        assert answer.status_code == 403, path
    # ... and reaches an operator's form (the refusal above is the role's, not the route's).
    assert app_client.get("/ui/templates-new").status_code == 200
    assert app_client.get("/ui/users").status_code == 403


def test_pages_render_for_each_role(app_client: TestClient) -> None:
    pages_to_see = ["/ui/orchestrations", f"/ui/orchestrations/{ORCH}", "/ui/workflows", "/ui/templates",
                    "/ui/templates/best-profile", "/ui/campaigns", "/ui/campaigns/spring-offer",
                    "/ui/destinations", "/ui/credentials", "/ui/notifications"]  # fmt: skip
    for name in ("admin", "viewer"):
        login(app_client, name)
        for path in pages_to_see:
            answer = app_client.get(path)
            assert answer.status_code == 200, (name, path, answer.text[:300])
    # A viewer reads a template's form but gets no Save button; an operator gets it.
    assert 'id="save-template"' not in app_client.get("/ui/templates/best-profile").text
    login(app_client, "operator")
    assert 'id="save-template"' in app_client.get("/ui/templates/best-profile").text
    assert app_client.get(f"/ui/orchestrations/{ORCH}/edit").status_code == 200
    # tiktok-audiences does not allow restricted-PII users: its template and campaign are hidden too.
    login(app_client, "restricted")
    assert "best-profile" not in app_client.get("/ui/templates").text
    assert "spring-offer" not in app_client.get("/ui/campaigns").text
    for path in (
        "/ui/templates/best-profile",
        "/ui/campaigns/spring-offer",
        f"/ui/orchestrations/{ORCH}/edit",
    ):
        assert app_client.get(path).status_code == 404, path


def template_form(csrf: str, **fields: object) -> dict[str, object]:
    form: dict[str, object] = {"csrf_token": csrf, "new": "true", "name": "web-template",
                               "destination": "tiktok-audiences", "settings": "", "audience_name_template": "",
                               "map_source": [], "map_target": []}  # fmt: skip
    return form | fields


def test_template_form_checks_mapping_settings_and_name_template_then_saves(
    app_client: TestClient, site: Env
) -> None:
    csrf = login(app_client, "operator")
    bad = template_form(
        csrf,
        map_source=["email", "phone", "idfa"],
        map_target=["EMAIL:sha1", "TELEPHONE", ""],
        settings="delivery: sideways\n",
        audience_name_template="{campaign} for {region}",
    )
    answer = app_client.post("/ui/templates", data=bad)
    assert answer.status_code == 422
    page = answer.text
    assert "fix the 3 fields" in page
    # The runs' own messages, next to their rows (HTML-escaped quotes).
    assert "hash state &#39;sha1&#39; is not one of raw, sha256, md5, auto" in page
    assert "audience fields are EMAIL, PHONE, IDFA, AAID" in page
    assert 'id="t-map-error-2"' in page  # a half-filled row
    assert "may only use {campaign}, {group} and {date}; remove {region}" in page
    assert "delivery" in re.search(r'id="t-settings-error">([^<]*)<', page).group(1)  # type: ignore[union-attr]
    assert not any(t.name == "web-template" for t in repos.list_templates(site.store))

    # The example name is rendered by the server too (a page without JavaScript), with TikTok's cut warning.
    long_name = "{campaign} - {group} - " + "x" * 60
    answer = app_client.post("/ui/templates", data=template_form(csrf, audience_name_template=long_name,
                                                                   available_to_campaigns="true", settings="x"))  # fmt: skip
    assert "Spring offer - loyal - xxx" in answer.text
    assert "TikTok keeps at most 70" in answer.text

    good = template_form(csrf, map_source=["email", "country"], map_target=["EMAIL", "REGION"],
                         settings="delivery: customer_file\n", audience_name_template="{campaign} - {group}",
                         available_to_campaigns="true")  # fmt: skip
    answer = app_client.post("/ui/templates", data=good, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    saved = repos.get_template(site.store, "web-template")
    assert saved.attribute_mapping == {"email": "EMAIL", "country": "REGION"}
    assert saved.settings == {"delivery": "customer_file"}
    # Saving an existing name as new is refused; an event template checks event parameter names.
    again = app_client.post("/ui/templates", data=good)
    assert again.status_code == 422
    assert "exists" in again.text
    events = template_form(csrf, name="web-events", destination="tiktok-offline-events",
                           map_source=["order_no"], map_target=["order_number_x"])  # fmt: skip
    answer = app_client.post("/ui/templates", data=events)
    assert answer.status_code == 422
    assert "not an offline-event parameter" in answer.text


def orchestration_form(csrf: str, **fields: object) -> dict[str, object]:
    form: dict[str, object] = {"csrf_token": csrf, "new": "true", "name": "web-orch", "source": "warehouse",
                               "destination": "tiktok-audiences", "template": "best-profile",
                               "query": "SELECT amperity_id, email FROM Merged_Customers", "key_column": "amperity_id",
                               "settings": "audience_name: Web buyers\n", "schedule": "", "enabled": "true"}  # fmt: skip
    return form | fields


def test_orchestration_form_checks_what_a_run_would_refuse_then_saves(
    app_client: TestClient, site: Env
) -> None:
    csrf = login(app_client, "operator")
    cases = [
        ({"schedule": "61 * * * *"}, "o-schedule-error", "is not a cron schedule"),
        ({"schedule": "every day"}, "o-schedule-error", "5-field cron"),
        ({"settings": ""}, "o-settings-error", "audience_name"),  # required at orchestration
        ({"settings": "mode: sideways\n"}, "o-settings-error", "mode"),
        ({"template": "store-purchases"}, "o-template-error", "belongs to destination"),
        ({"source": "nowhere"}, "o-source-error", "no source named"),
        ({"key_column": ""}, "o-key_column-error", "key_column"),
        ({"query": ""}, "o-query-error", ""),
    ]
    for fields, element, message in cases:
        answer = app_client.post("/ui/orchestrations", data=orchestration_form(csrf, **fields))
        assert answer.status_code == 422, fields
        found = re.search(rf'id="{element}">([^<]*)<', answer.text)
        assert found, (fields, answer.text[-2000:])
        assert message in found.group(1), fields
    assert not any(o.name == "web-orch" for o in repos.list_orchestrations(site.store))
    answer = app_client.post("/ui/orchestrations", data=orchestration_form(csrf, schedule="30 5 * * 1"),
                             follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.text
    assert repos.get_orchestration(site.store, "web-orch").schedule == "30 5 * * 1"
    # Editing keeps the name; the SQL editor shows the stored query.
    page = app_client.get("/ui/orchestrations/web-orch/edit").text
    assert "SELECT amperity_id, email FROM Merged_Customers</textarea>" in page


def test_users_add_and_set_role_with_the_cli_checks(app_client: TestClient, site: Env) -> None:
    csrf = login(app_client, "admin")
    answer = app_client.post("/ui/users", data={"csrf_token": csrf, "name": "bad name", "password": "short",
                                                "role": "boss"})  # fmt: skip
    assert answer.status_code == 422
    assert "fix the 3 fields" in answer.text
    answer = app_client.post("/ui/users", data={"csrf_token": csrf, "name": "carol", "password": ADMIN_PASSWORD,
                                                "role": "operator", "restricted_pii": "true"})  # fmt: skip
    assert answer.status_code == 200
    assert "added as operator" in answer.text
    carol = next(u for u in accounts.list_users(site.store) if u.name == "carol")
    assert (carol.role, carol.restricted_pii) == ("operator", True)
    answer = app_client.post("/ui/users/carol/role", data={"csrf_token": csrf, "role": "viewer"})
    assert answer.status_code == 200
    carol = next(u for u in accounts.list_users(site.store) if u.name == "carol")
    assert (carol.role, carol.restricted_pii) == ("viewer", False)
    assert (
        app_client.post("/ui/users/nobody/role", data={"csrf_token": csrf, "role": "viewer"}).status_code
        == 404
    )
    # The last admin cannot be demoted (the CLI's rule and message).
    answer = app_client.post("/ui/users/admin/role", data={"csrf_token": csrf, "role": "viewer"})
    assert answer.status_code == 422
    assert "last admin" in answer.text
    changes = audit.entries(site.store, limit=10, offset=0, actor="admin", action="user.set_role")
    assert [e.target for e in changes] == ["user:carol"]


def test_token_expiry_warns_a_week_before_it_lapses() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    base = {"name": "c", "app_id": "1", "access_token": SecretStr("t")}
    assert token_expiry(Credential.model_validate(base), now).level == "ok"
    soon = Credential.model_validate(base | {"token_expires_at": now + timedelta(days=3)})
    assert token_expiry(soon, now) == Expiry(
        "warning", "lapses 2026-03-04 00:00 UTC (in 3 days): reauthorize"
    )
    later = Credential.model_validate(base | {"token_expires_at": now + timedelta(days=30)})
    assert token_expiry(later, now).level == "ok"
    gone = Credential.model_validate(base | {"token_expires_at": now - timedelta(hours=1)})
    assert token_expiry(gone, now).level == "problem"
    refreshed = Credential.model_validate(base | {"token_expires_at": now - timedelta(hours=1),
                                                  "refresh_token": SecretStr("r")})  # fmt: skip
    assert token_expiry(refreshed, now).level == "ok"
    assert token_expiry(Credential.model_validate({"name": "c", "app_id": "1"}), now).level == "problem"


def test_campaign_plan_shows_each_group_and_destination_then_run_now_sends_them(
    app_client: TestClient, site: Env
) -> None:
    csrf = login(app_client, "operator")
    page = app_client.post("/ui/campaigns/spring-offer/plan", data={"csrf_token": csrf}).text
    campaign = repos.get_campaign(site.store, "spring-offer")
    rows = re.findall(r'<tr data-group="([^"]+)" data-destination="([^"]+)">.*?class="adds">(\d+)<', page)
    expected = {
        (g.name, d.destination)
        for g in campaign.sub_audiences
        for d in g.destinations or campaign.destinations
    }
    assert {(g, d) for g, d, _ in rows} == expected
    assert all(int(adds) > 0 for _, _, adds in rows)  # nothing was sent before: every group is all adds
    assert "nothing was sent" in page
    assert not repos.get_audience_states(site.store, "tiktok-audiences", ORCH)

    # Run now queues the run and opens its page; a worker executes it (here this process, as a worker would).
    answer = app_client.post(
        "/ui/campaigns/spring-offer/run", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    run_page = answer.headers["location"]
    assert re.fullmatch(r"/ui/campaigns/spring-offer/runs/[0-9a-f]{32}", run_page)
    page = app_client.get(run_page).text
    assert 'data-state="queued"' in page
    assert 'id="cancel-run"' in page
    item = background.claim(site.store)
    assert item is not None
    assert item.kind == "campaign"
    background.execute(site.workspace, site.store, item)
    page = app_client.get(run_page).text
    assert 'data-state="done"' in page
    assert re.search(r"Run [0-9a-f]{12}: sent", page)
    links = re.findall(r'href="/ui/workflows/([0-9a-f]+)"', page)
    assert len(set(links)) == len(expected)
    assert all(repos.get_workflow(site.store, w).state.startswith("succeeded") for w in set(links))
    # The page now lists those deliveries as the last ones.
    again = app_client.get("/ui/campaigns/spring-offer").text
    assert set(re.findall(r'href="/ui/workflows/([0-9a-f]+)"', again)) == set(links)
    # A scheduled campaign's page shows its next and last scheduled run.
    repos.save_campaign(site.store, campaign.model_copy(update={"schedule": "30 7 * * 1"}))
    at = datetime(2030, 1, 7, 7, 30, tzinfo=UTC)
    runqueue.put_schedule(site.store, ScheduleRecord(orchestration="spring-offer", kind="campaign", cron="30 7 * * 1",
                                                     next_run_at=at, last_run_at=at - timedelta(days=7),
                                                     last_outcome="skipped: still running", updated_at=at))  # fmt: skip
    try:
        state = re.search(
            r'<span id="schedule-state">(.*?)</span>', app_client.get("/ui/campaigns/spring-offer").text
        )
        assert state
        assert "next run <time" in state.group(1)
        assert "2030-01-07 07:30:00" in state.group(1)
        assert "2029-12-31 07:30:00</time> UTC: skipped: still running" in state.group(1)
    finally:
        repos.save_campaign(site.store, campaign)


def test_audience_and_events_charts_are_inline_svg_of_the_runs(app_client: TestClient, site: Env) -> None:
    first, second = site.run(), site.run()
    assert first.ok
    assert second.ok
    events = start_run(build_run(site.workspace, site.store, EVENTS))
    assert events.ok
    login(app_client, "viewer")
    listing = app_client.get("/ui/audiences").text
    audience_id = site.audience_id()
    assert f'href="/ui/audiences/{audience_id}"' in listing
    page = app_client.get(f"/ui/audiences/{audience_id}").text
    history = queries.audience_history(site.store, ORCH)
    assert len(history) == 2
    # One point per run on the size chart, each titled with the size TikTok read back.
    size_chart = page[page.index("<svg") : page.index("</svg>")]
    assert size_chart.count("<circle") == 2
    assert f"{history[0].size:,}" in size_chart
    assert "<script" not in page
    assert "+0 added" in page  # the second run found nothing to change

    page = app_client.get("/ui/events?days=7").text
    chart = page[page.index("<svg") : page.index("</svg>")]
    day = queries.events_per_day(site.store, days=7)[0]
    assert day.accepted > 0
    assert f"accepted: {day.accepted:,}" in chart  # the accepted bar of today
    for reason, n in day.rejected.items():
        assert f"rejected: {reason}: {n:,}" in chart
    ledger = re.search(r'<table class="compact" id="ledger">(.*?)</table>', page, re.S)
    assert ledger
    assert f"{day.accepted:,}" in ledger.group(1)
    # A restricted-PII user sees neither tiktok-audiences' audience nor its page.
    login(app_client, "restricted")
    assert audience_id not in app_client.get("/ui/audiences").text
    assert app_client.get(f"/ui/audiences/{audience_id}").status_code == 404


def test_the_store_has_the_ui_indexes(site: Env) -> None:
    """Migration 8: the workflow lists and event days read through indexes (bench/ui_render.py measures)."""
    inspector = sa.inspect(site.store.engine)
    names = {i["name"] for table in ("workflows", "tasks") for i in inspector.get_indexes(table)}
    assert {"ix_workflows_orchestration_created", "ix_workflows_created", "ix_tasks_name_finished"} <= names


def test_workflow_pages_follow_each_other_without_gaps(site: Env) -> None:
    """Keyset paging: page after page (50 each) lists every workflow once, newest first, as one long list."""
    everything = queries.page_workflows(site.store, limit=1000)
    assert len(everything) >= 3  # the runs of the tests above
    seen: list[str] = []
    after = None
    while True:
        page = queries.page_workflows(site.store, limit=2, after=after)
        if not page:
            break
        seen += [w.id for w in page]
        after = page[-1].id
    assert seen == [w.id for w in everything]
    with pytest.raises(NotFoundError):
        queries.page_workflows(site.store, after="abcdef12")
