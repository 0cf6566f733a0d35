"""The web UI in a real browser: Debian's headless chromium driven by Selenium against a real `ttsync serve`
and the emulator on loopback. One scenario (sign in → orchestration → Plan → Run now → live progress to
success → a TikTok fault fails the next run → the workflow's resolution → Resolve → success) plus the role,
restricted-PII and CSRF refusals. Every page visited is saved as a screenshot under docs/ui/."""

from __future__ import annotations

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
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "ui"
OK = ("succeeded", "succeeded with warnings")  # a fresh audience's match rate is still being computed

if CHROMIUM and DRIVER:  # selenium is only needed (and only imported) when the browser is there
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless chromium with a fresh profile, 1280 px wide."""
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


def shot(driver: WebDriver, name: str) -> None:
    """Save the whole page (height fitted to the content) as docs/ui/NAME.png."""
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


@pytest.fixture
def env(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """The sample workspace of the other end-to-end tests, smaller (the browser, not the data, is tested)."""
    made = make_env(emulator, tmp_path / "ws", monkeypatch, rows=1_500)
    try:
        yield made
    finally:
        made.store.close()


@pytest.fixture
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
                       ("/ui/users", "15-users"), ("/ui/audit", "16-audit")]:  # fmt: skip
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
    for data in ({}, {"csrf_token": "forged"}):
        answer = client.post(f"/ui/orchestrations/{ORCH}/run", data=data)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert "No workflows match." in client.get("/ui/workflows").text
    # Sign-out is a post too: without the token the session stays.
    assert client.post("/ui/logout", data={}).status_code == 403
    assert client.get("/ui/orchestrations").status_code == 200
    assert client.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/ui/orchestrations").status_code == 303
    client.close()
