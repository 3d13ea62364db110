"""The operator's journeys from the admin's index, in a real browser at 1400 px: one product ("VTEX
order hub") from the login on, the hub's pages in operator order, django-q2's tables last, the
store page's buttons, and lists that fit the window with long names cut and whole on hover."""
from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By

from integration.models import Account, AdapterBinding, Alert, AlertKind, Order, OrderSync, SyncStatus
from tests.browser.pages import click_through

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG_NAME = "Magazine Luiza Marketplace — Rio Grande do Sul regional fulfilment store (B2B and B2C)"
APP_KEY = "vtexappkey-indexstore-BROWSER"
APP_TOKEN = "index-store-token-SECRET-55"
HUB_ROWS = ["integration-dashboard", "integration-failedsync", "integration-heldsync", "integration-failedupdate",
            "integration-order", "integration-ordersync", "integration-vtexupdate", "integration-account",
            "integration-adapterbinding", "integration-erptoken", "integration-plugins", "integration-alert",
            "integration-feedevent"]


@pytest.fixture
def sandbox(serve_sandbox):
    return serve_sandbox("indexstore", APP_KEY, APP_TOKEN, seed=11)


@pytest.fixture
def busy_store(sandbox):
    """A store with a long name and something on every list."""
    store = Account(name=LONG_NAME, account_name="indexstore", app_key=APP_KEY, api_base_url=sandbox.url)
    store.app_token = APP_TOKEN
    store.save()
    binding = AdapterBinding(account=store, adapter_key="webhook", name="Warehouse management system of the south region",
                             settings={"url": "https://erp.example.com/orders", "timeout": 5})
    binding.secret_settings = {"bearer_token": "erp-bearer-SECRET-1"}
    binding.save()
    for n, status in enumerate([SyncStatus.FAILED, SyncStatus.HELD, SyncStatus.SUCCEEDED]):
        order = Order.objects.create(account=store, order_id=f"1500{n}-01", vtex_status="ready-for-handling")
        OrderSync.objects.create(order=order, binding=binding, action="send", status=status, attempts=3,
                                 last_error="ERP answered HTTP 500: " + "the warehouse service is unavailable " * 4
                                 if status == SyncStatus.FAILED else "",
                                 hold_reason="VTEX says the order is 'handling'" if status == SyncStatus.HELD else "",
                                 next_attempt_at=timezone.now() + timedelta(hours=1))
    Alert.objects.create(kind=AlertKind.CYCLE_FAILING, subject="indexstore", account=store,
                         message="The feed cycle failed 3 times in a row: " + "VTEX answered 503 " * 6)
    return store


def from_index(browser, row_id):
    browser.get(browser.base_url + "/admin/")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, f"#content-main #{row_id} a"))


def fits_the_window(browser):
    """No horizontal scroll bar: the page is no wider than the 1400 px window."""
    return browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_the_login_and_every_page_say_vtex_order_hub(browser, login, superuser):
    browser.get(browser.base_url + "/admin/login/")
    assert browser.find_element(By.ID, "site-name").text == "VTEX order hub"
    assert "VTEX order hub" in browser.title and "Django" not in browser.page_source
    login("boss", "boss-password-123")
    assert browser.find_element(By.ID, "site-name").text == "VTEX order hub"
    assert browser.title == "Operations | VTEX order hub"
    assert "Django administration" not in browser.page_source and "View site" not in browser.page_source


@pytest.mark.django_db(transaction=True)
def test_the_index_lists_the_hub_in_operator_order_and_the_task_queue_last(browser, login, superuser, busy_store):
    login("boss", "boss-password-123")
    browser.get(browser.base_url + "/admin/")
    sections = browser.find_elements(By.CSS_SELECTOR, "#content-main div.module")
    captions = [s.find_element(By.TAG_NAME, "caption").text for s in sections]
    assert captions[0] == "VTEX ORDER HUB" or captions[0].lower() == "vtex order hub", captions
    assert captions[-1].lower() == "task queue (django-q2 internals)", captions
    rows = [r.get_attribute("id") for r in sections[0].find_elements(By.CSS_SELECTOR, "tbody th, tr > th[scope=row]")]
    assert [r for r in rows if r] == HUB_ROWS
    # The sidebar of every page has the same entries, the dashboard and the plugins page among them.
    from_index(browser, "integration-failedsync")
    sidebar = browser.find_element(By.ID, "nav-sidebar")
    assert sidebar.find_element(By.LINK_TEXT, "Health dashboard") and sidebar.find_element(By.LINK_TEXT, "Installed plugins")


@pytest.mark.django_db(transaction=True)
def test_the_journeys_from_the_index_fit_1400_px(browser, login, superuser, busy_store):
    login("boss", "boss-password-123")
    assert browser.execute_script("return window.innerWidth") == 1400

    # Stores: the long name is cut on one line, whole on hover; the page does not scroll sideways.
    from_index(browser, "integration-account")
    cell = browser.find_element(By.CSS_SELECTOR, "#result_list .hub-truncate")
    assert cell.get_attribute("title") == LONG_NAME
    assert cell.size["height"] < 30, "the store's name wraps"
    assert fits_the_window(browser), "the stores list scrolls sideways at 1400 px"

    # The store page offers Test connection as a button, where it says to use it.
    click_through(browser, cell)
    assert "press \"Test connection\" above" in browser.find_element(By.ID, "health-backlog").text
    click_through(browser, browser.find_element(By.ID, "page-action-check-connection"))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert f"{LONG_NAME}: connected." in message, message
    assert "/admin/integration/account/" in browser.current_url and "checked" in browser.find_element(By.ID, "health-backlog").text

    # Every other list and page of the hub, from the index.
    for row_id, expect in [("integration-dashboard", "Health dashboard"), ("integration-failedsync", "15000-01"),
                           ("integration-heldsync", "15001-01"), ("integration-order", "15002-01"),
                           ("integration-ordersync", "Delivered"), ("integration-adapterbinding", "webhook"),
                           ("integration-plugins", "erp_plugins.webhook"), ("integration-alert", "failed 3 times"),
                           ("integration-feedevent", "feed event")]:
        from_index(browser, row_id)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert expect.lower() in body.lower(), f"{row_id}: {expect!r} not on the page"
        assert fits_the_window(browser), f"{row_id} scrolls sideways at 1400 px"
    truncated = browser.execute_script(
        "return [...document.querySelectorAll('.hub-truncate')].map(e => e.title)")
    assert truncated == [] or all(truncated)
