"""The web UI in a real browser: Debian's headless chromium driven by Selenium against a real `ttsync serve`
and the emulator on loopback. One scenario (sign in → orchestration → Plan → Run now → live progress to
success → a TikTok fault fails the next run → the workflow's resolution → Resolve → success) plus the role,
restricted-PII and CSRF refusals. Every page visited is saved as a screenshot: into a temporary folder, or into
the folder named by TTSYNC_UI_SHOTS (`TTSYNC_UI_SHOTS=docs/ui` refreshes the images of docs/ui.md), so a test run
leaves the checkout clean."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from audience_env import ORCH, Env, make_env
from server_env import ADMIN_PASSWORD, Server, running_server, server_environ
from ttsync.app import accounts
from ttsync.app.runs import build_run, start_run
from ttsync.emulator.embedded import EmulatorServer

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]
# A plain test run must not rewrite tracked files: screenshots go to a temporary folder (the browser fixture makes
# and removes it) unless TTSYNC_UI_SHOTS names one.
SHOTS_ENV = os.environ.get("TTSYNC_UI_SHOTS")
SHOTS = (
    Path(SHOTS_ENV).resolve() if SHOTS_ENV else Path(tempfile.gettempdir()) / f"ttsync-ui-shots-{os.getpid()}"
)
OK = ("succeeded", "succeeded with warnings")  # a fresh audience's match rate is still being computed

if CHROMIUM and DRIVER:  # selenium is only needed (and only imported) when the browser is there
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless chromium with a fresh profile, 1280 px wide: one for the module (each test signs in anew)."""
    profile = tempfile.mkdtemp(prefix="ttsync-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if not SHOTS_ENV:
            shutil.rmtree(SHOTS, ignore_errors=True)


def shot(driver: WebDriver, name: str) -> None:
    """Save the whole page (height fitted to the content) as SHOTS/NAME.png."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(600, min(int(height) + 120, 2400)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(width, 900)


def sign_in(driver: WebDriver, server: Server, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(server.url + "/ui/")
    assert "/ui/login" in driver.current_url
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "who"))
    assert driver.find_element(By.ID, "who").text == name


def click_to(driver: WebDriver, element_id: str, url_part: str) -> None:
    """Click a button that submits a form and wait for the page it leads to."""
    before = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()
    WebDriverWait(driver, 30).until(
        lambda d: url_part in d.current_url and d.find_element(By.TAG_NAME, "html") != before
    )


def wait_state(driver: WebDriver, states: tuple[str, ...], timeout: float = 60) -> str:
    """Wait, without reloading (the page's own script follows the run), until the state is one of `states`."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = driver.find_element(By.ID, "wf-state").text
        except Exception:  # the script reloads the page when the run ends; the element is briefly gone
            text = ""
        if text in states and not driver.find_elements(By.ID, "live-note"):
            return text
        time.sleep(0.3)
    raise AssertionError(f"workflow state stayed {text!r}")


def form_session(server: Server, name: str) -> tuple[httpx.Client, str]:
    """A plain HTTP client signed in through the UI's form, and the CSRF token its pages carry."""
    client = server.client()
    answer = client.post("/ui/login", data={"name": name, "password": ADMIN_PASSWORD, "next": "/ui/"})
    assert answer.status_code == 303, answer.text
    page = client.get("/ui/notifications").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return client, match.group(1)


@pytest.fixture(scope="module")
def env(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The sample workspace of the other end-to-end tests, smaller (the browser, not the data, is tested);
    one for the module, so the tests run in file order on what the scenario left."""
    emulator_server.admin.reset("demo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        made = make_env(emulator_server, tmp_path_factory.mktemp("webui") / "ws", monkeypatch, rows=1_500)
        try:
            yield made
        finally:
            made.store.close()


@pytest.fixture(scope="module")
def server(env: Env) -> Iterator[Server]:
    """`ttsync serve` over the workspace, with an admin, a viewer and a restricted-PII operator (added in this
    process to the same store file: the CLI's `users add` is tested elsewhere, and three more processes would
    cost seconds)."""
    for name, role, restricted in [("admin", "admin", False), ("viewer", "viewer", False),
                                   ("restricted", "operator", True)]:  # fmt: skip
        accounts.add_user(env.store, name, ADMIN_PASSWORD, role, restricted_pii=restricted, actor="test")
    with running_server(
        env.workspace.root, server_environ(env.environ), "--workers", "1", "--tick", "0.5"
    ) as running:
        yield running


def test_scenario_run_fail_follow_resolution_resolve(browser: WebDriver, server: Server, env: Env) -> None:
    driver = browser
    driver.get(server.url + "/ui/orchestrations")
    assert "/ui/login" in driver.current_url
    shot(driver, "01-sign-in")
    sign_in(driver, server, "admin")
    assert driver.find_element(By.CSS_SELECTOR, ".role").text == "admin"
    shot(driver, "02-orchestrations")

    # Add a credential: a bad advertiser id is refused next to its field, then it is saved and authorized
    # through the emulator's consent page, which redirects back to the server's callback.
    seed = env.emulator.seed
    driver.get(server.url + "/ui/credentials")
    for field, value in [("name", "web-cred"), ("app_id", seed.app_id), ("app_secret", seed.app_secret),
                         ("advertiser_ids", "12ab")]:  # fmt: skip
        driver.find_element(By.ID, f"c-{field}").send_keys(value)
    click_to(driver, "save-credential", "/ui/credentials")
    assert driver.find_element(By.ID, "c-advertiser_ids").get_attribute("aria-invalid") == "true"
    assert driver.find_element(By.ID, "c-advertiser_ids-error").text
    assert not driver.find_elements(By.CSS_SELECTOR, 'tr[data-credential="web-cred"]')
    shot(driver, "03-credential-invalid")
    advertisers = driver.find_element(By.ID, "c-advertiser_ids")
    advertisers.clear()
    advertisers.send_keys(seed.advertiser_ids[0])
    driver.find_element(By.ID, "c-app_secret").send_keys(seed.app_secret)
    driver.find_element(By.ID, "save-credential").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "message"))
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-credential="web-cred"]')
    assert row.find_element(By.CSS_SELECTOR, ".token").text == "missing"
    driver.find_element(By.ID, "authorize-web-cred").click()
    WebDriverWait(driver, 10).until(lambda d: "/portal/" in d.current_url)
    shot(driver, "04-tiktok-consent")
    driver.find_element(By.CSS_SELECTOR, "button[name=confirm]").click()
    WebDriverWait(driver, 20).until(
        lambda d: "/callback" in d.current_url and d.find_elements(By.ID, "message")
    )
    assert "authorized" in driver.find_element(By.ID, "message").text
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-credential="web-cred"]')
    assert row.find_element(By.CSS_SELECTOR, ".token").text == "set"
    assert seed.app_secret not in driver.page_source
    shot(driver, "05-credential-authorized")

    driver.get(server.url + "/ui/orchestrations")

    driver.find_element(By.LINK_TEXT, ORCH).click()
    click_to(driver, "plan", "/plan")
    plan = driver.find_element(By.ID, "plan-result").text
    assert "nothing was sent" in plan
    assert "Rejected rows by reason" in plan
    assert "EMAIL_SHA256" in plan
    shot(driver, "06-orchestration-plan")

    click_to(driver, "run-now", "/ui/workflows/")
    assert wait_state(driver, OK) in OK
    tasks = driver.find_elements(By.CSS_SELECTOR, "#tasks tr[data-task]")
    assert tasks
    assert {t.find_element(By.CSS_SELECTOR, ".t-state").text for t in tasks} <= {"succeeded", "skipped"}
    shot(driver, "07-workflow-succeeded")

    # TikTok refuses every call (no permission on the advertiser): the next run fails with a resolution.
    env.emulator.admin.set_faults(rate=1.0, codes=[40001])
    driver.get(server.url + f"/ui/orchestrations/{ORCH}")
    click_to(driver, "run-now", "/ui/workflows/")
    failed_url = driver.current_url
    assert wait_state(driver, ("failed",)) == "failed"
    resolution = driver.find_element(By.ID, "resolution").text
    assert "How to fix it" in resolution
    shot(driver, "08-workflow-failed-resolution")

    # The notification leads to the same workflow.
    driver.get(server.url + "/ui/notifications")
    assert driver.find_element(By.CSS_SELECTOR, ".badge").text.isdigit()
    shot(driver, "09-notifications")
    driver.find_element(By.LINK_TEXT, "Open the workflow").click()
    assert driver.current_url == failed_url

    # The fix is made in TikTok (the permission is back); Resolve continues the same workflow to success.
    env.emulator.admin.clear_faults()
    click_to(driver, "resolve", failed_url)
    assert wait_state(driver, OK) in OK
    assert not driver.find_elements(By.ID, "resolve")

    driver.get(server.url + "/ui/workflows?state=failed")
    assert "No workflows match." in driver.page_source  # the resolved one succeeded
    driver.get(server.url + "/ui/workflows")
    assert len(driver.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    shot(driver, "10-workflows")

    driver.get(server.url + "/ui/destinations/tiktok-audiences")
    click_to(driver, "test-connection", "/test")
    result = driver.find_element(By.ID, "check-result").text
    assert "pass" in result
    shot(driver, "11-destination-test-connection")
    # Add a destination: field errors appear next to their fields with the configuration's messages.
    driver.get(server.url + "/ui/destinations")
    driver.find_element(By.ID, "add-destination").click()
    driver.find_element(By.ID, "d-name").send_keys("web-dest")
    settings = driver.find_element(By.ID, "d-settings")
    settings.clear()
    settings.send_keys("advertiser_ids: ['12ab']\nmode: sideways\n")
    click_to(driver, "save-destination", "/ui/destinations")
    assert (
        driver.find_element(By.ID, "form-errors").text == "Nothing was saved: fix the 1 field marked below."
    )
    message = driver.find_element(By.ID, "d-settings-error").text
    assert "advertiser_ids" in message
    assert "mode" in message
    assert driver.find_element(By.ID, "d-settings").get_attribute("aria-invalid") == "true"
    shot(driver, "12-destination-form-errors")
    settings = driver.find_element(By.ID, "d-settings")
    settings.clear()
    settings.send_keys(f"advertiser_ids: ['{seed.advertiser_ids[0]}']\nmode: mirror\n")
    driver.find_element(By.ID, "d-allow_restricted_pii").click()
    click_to(driver, "save-destination", "/ui/destinations/web-dest")
    assert "allowed" in driver.find_element(By.CSS_SELECTOR, ".facts").text
    driver.find_element(By.ID, "edit-destination").click()
    assert "mirror" in str(driver.find_element(By.ID, "d-settings").get_attribute("value"))

    for page, name in [("/ui/destinations", "13-destinations"), ("/ui/credentials", "14-credentials"),
                       ("/ui/audit", "16-audit")]:  # fmt: skip
        driver.get(server.url + page)
        assert driver.find_element(By.TAG_NAME, "h1").text
        shot(driver, name)
    assert "run.resolve" in driver.page_source
    assert env.environ["TTSYNC_ACCESS_TOKEN"] not in driver.page_source

    # Phone width: the same workflow page, no horizontal overflow of the page itself.
    driver.set_window_size(390, 844)
    driver.get(failed_url)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    shot(driver, "17-workflow-390px")


def test_viewer_cannot_run_restricted_user_cannot_reach_hidden_csrf_refused(
    browser: WebDriver, server: Server
) -> None:
    driver = browser
    sign_in(driver, server, "viewer")
    driver.get(server.url + f"/ui/orchestrations/{ORCH}")
    assert not driver.find_elements(By.ID, "run-now")
    assert driver.find_element(By.ID, "read-only").text
    shot(driver, "18-viewer-orchestration")
    assert not driver.find_elements(By.LINK_TEXT, "Users")
    driver.get(server.url + "/ui/users")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Forbidden"

    # The server refuses a viewer's run even with a valid CSRF token.
    client, csrf = form_session(server, "viewer")
    refused = client.post(f"/ui/orchestrations/{ORCH}/run", data={"csrf_token": csrf})
    assert refused.status_code == 403
    client.close()

    # tiktok-audiences has allow_restricted_pii: false: not listed, and 404 by URL.
    sign_in(driver, server, "restricted")
    driver.get(server.url + "/ui/destinations")
    assert "tiktok-audiences" not in driver.page_source
    driver.get(server.url + "/ui/orchestrations")
    assert ORCH not in driver.page_source
    for path in ("/ui/destinations/tiktok-audiences", f"/ui/orchestrations/{ORCH}"):
        driver.get(server.url + path)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    client, csrf = form_session(server, "restricted")
    assert client.get("/ui/destinations/tiktok-audiences").status_code == 404
    assert client.post(f"/ui/orchestrations/{ORCH}/run", data={"csrf_token": csrf}).status_code == 404
    client.close()

    # Posts without the session's CSRF token are refused (one server for all these refusals keeps it quick).
    client, csrf = form_session(server, "admin")
    before = client.get("/ui/workflows").text.count("<tr")
    for data in ({}, {"csrf_token": "forged"}):
        answer = client.post(f"/ui/orchestrations/{ORCH}/run", data=data)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert client.get("/ui/workflows").text.count("<tr") == before
    # Sign-out is a post too: without the token the session stays.
    assert client.post("/ui/logout", data={}).status_code == 403
    assert client.get("/ui/orchestrations").status_code == 200
    assert client.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/ui/orchestrations").status_code == 303
    client.close()
    driver.set_window_size(1280, 900)


def test_templates_orchestrations_credentials_users_campaigns_charts(
    browser: WebDriver, server: Server, env: Env
) -> None:
    """The pages added after the scenario, on what it left (two runs, the authorized web-cred)."""
    driver = browser
    sign_in(driver, server, "admin")

    # Data template: the example name follows the typing (the page's own script, no reload); a bad mapping
    # row and an unknown template field are refused inline with the runs' messages; then it saves.
    driver.get(server.url + "/ui/templates-new")
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, "t-name").send_keys("web-template")
    name_template = driver.find_element(By.ID, "t-audience_name_template")
    name_template.send_keys("{campaign} / {group} / {date}")
    example = driver.find_element(By.ID, "name-example-value").text
    assert example.startswith("Spring offer / loyal / 20")
    name_template.send_keys(" {region}")
    assert "remove {region}" in driver.find_element(By.ID, "name-example-note").text
    assert driver.find_element(By.TAG_NAME, "html") == page  # still the same page: rendered as typed
    driver.find_element(By.ID, "t-map-source-0").send_keys("email")
    driver.find_element(By.ID, "t-map-target-0").send_keys("EMAIL:sha1")
    driver.find_element(By.ID, "add-row").click()
    assert driver.find_element(By.ID, "t-map-source-3") == driver.switch_to.active_element
    click_to(driver, "save-template", "/ui/templates")
    assert "hash state 'sha1'" in driver.find_element(By.ID, "t-map-error-0").text
    assert driver.find_element(By.ID, "t-map-source-0").get_attribute("aria-invalid") == "true"
    assert "remove {region}" in driver.find_element(By.ID, "t-audience_name_template-error").text
    shot(driver, "19-template-form-errors")
    target = driver.find_element(By.ID, "t-map-target-0")
    target.clear()
    target.send_keys("EMAIL:sha256")
    name_template = driver.find_element(By.ID, "t-audience_name_template")
    name_template.clear()
    name_template.send_keys("{campaign} - {group}")
    driver.find_element(By.ID, "t-available_to_campaigns").click()
    click_to(driver, "save-template", "/ui/templates/web-template")
    assert driver.find_element(By.ID, "message").text == "Saved."
    assert driver.find_element(By.ID, "name-example-value").text == "Spring offer - loyal"
    shot(driver, "20-template-saved")

    # Orchestration: edit the schedule; a bad one is refused next to the field, a good one is saved.
    driver.get(server.url + f"/ui/orchestrations/{ORCH}")
    driver.find_element(By.ID, "edit-orchestration").click()
    schedule = driver.find_element(By.ID, "o-schedule")
    schedule.clear()
    schedule.send_keys("0 25 * * *")
    click_to(driver, "save-orchestration", "/ui/orchestrations")
    assert "is not a cron schedule" in driver.find_element(By.ID, "o-schedule-error").text
    shot(driver, "21-orchestration-edit-errors")
    schedule = driver.find_element(By.ID, "o-schedule")
    schedule.clear()
    schedule.send_keys("15 7 * * 1-5")
    click_to(driver, "save-orchestration", f"/ui/orchestrations/{ORCH}")
    assert "15 7 * * 1-5" in driver.find_element(By.CSS_SELECTOR, ".facts").text

    # Credentials: Test shows each check; Revoke forgets web-cred's token.
    driver.get(server.url + "/ui/credentials")
    click_to(driver, "test-web-cred", "/test")
    assert "all checks pass" in driver.find_element(By.ID, "check-title").text
    click_to(driver, "revoke-web-cred", "/revoke")
    assert "revoked" in driver.find_element(By.ID, "message").text
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-credential="web-cred"]')
    assert row.find_element(By.CSS_SELECTOR, ".token").text == "missing"
    assert row.find_element(By.CSS_SELECTOR, ".expiry").text == "✘ no token: authorize it"
    shot(driver, "22-credentials-revoked")

    # Users: add one, then change its role.
    driver.get(server.url + "/ui/users")
    driver.find_element(By.ID, "u-name").send_keys("dana")
    driver.find_element(By.ID, "u-password").send_keys(ADMIN_PASSWORD)
    Select(driver.find_element(By.ID, "u-role")).select_by_visible_text("operator")
    click_to(driver, "add-user", "/ui/users")
    assert "added as operator" in driver.find_element(By.ID, "message").text
    Select(driver.find_element(By.ID, "role-dana")).select_by_visible_text("viewer")
    click_to(driver, "set-role-dana", "/role")
    assert "now viewer" in driver.find_element(By.ID, "message").text
    shot(driver, "23-users")

    # Campaigns: the list, then a campaign's page and its plan per group and destination.
    driver.get(server.url + "/ui/campaigns")
    shot(driver, "24-campaigns")
    driver.find_element(By.LINK_TEXT, "spring-offer").click()
    click_to(driver, "plan", "/plan")
    assert driver.find_elements(By.CSS_SELECTOR, "#plan-changes tbody tr")
    shot(driver, "25-campaign-plan")

    # Charts: the audience the scenario's runs wrote, and offline events after one events run.
    assert start_run(build_run(env.workspace, env.store, "store-purchases-last-7-days")).ok
    driver.get(server.url + "/ui/audiences")
    driver.find_element(By.LINK_TEXT, ORCH).click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart circle")) >= 2
    shot(driver, "26-audience-charts")
    driver.get(server.url + "/ui/events")
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    shot(driver, "27-events-chart")

    # Phone width: the data template form (mapping rows, selects in a row) reflows without page overflow.
    driver.set_window_size(390, 844)
    driver.get(server.url + "/ui/templates/web-template")
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    shot(driver, "28-template-390px")
    driver.set_window_size(1280, 900)
