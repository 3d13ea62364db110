import pytest
from selenium.webdriver.common.by import By

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_login_reaches_the_admin_index(login, superuser):
    browser = login("boss", "boss-password-123")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "VTEX order hub" in body and browser.find_element(By.TAG_NAME, "h1").text == "Operations"


def test_admin_pages_require_login(browser):
    browser.get(browser.base_url + "/admin/integration/account/")
    assert "/admin/login/" in browser.current_url
