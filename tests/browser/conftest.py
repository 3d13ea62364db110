"""The browser harness: Debian's Chromium, headless, driven by Selenium against live_server.

Nothing here downloads a browser: the driver and the browser are the system's own packages.
On a failure the test's screenshot is saved under test-artifacts/.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def browser(request, live_server):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("HUB_REQUIRE_BROWSER"):
            pytest.fail("Chromium or chromedriver missing: apt-get install chromium chromium-driver")
        pytest.skip("Chromium not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="hub-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(3)
    driver.base_url = live_server.url
    yield driver
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def login(browser):
    """Log `user` in through the real login form."""
    from selenium.webdriver.common.by import By

    def do(username, password):
        browser.get(browser.base_url + "/admin/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        from selenium.webdriver.support.ui import WebDriverWait

        # The click returns before the next page has loaded: wait for the redirect (or the error).
        WebDriverWait(browser, 10).until(
            lambda d: "/admin/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".errornote"))
        assert "/admin/login" not in browser.current_url, "login failed"
        return browser

    return do


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-password-123")
