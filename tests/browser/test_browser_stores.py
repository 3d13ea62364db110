"""Setting a store up in a real browser, against the VTEX sandbox over real HTTP: add it, test its
connection, fix a misspelled feed status and push the feed configuration, bind a webhook adapter
(a bad setting rejected, then fixed), pause and resume the store and watch its syncs wait and go.

The admin runs in live_server; the feed cycle and the dispatcher run in the test process between
clicks, and the ERP is a LoopbackERP behind the webhook adapter.
"""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import Account, AdapterBinding, OrderSync, SyncStatus
from tests.browser.pages import click_id, click_through, messages, text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP_KEY = "vtexappkey-setupstore-BROWSER"
APP_TOKEN = "setup-store-token-SECRET-77"


@pytest.fixture
def sandbox(serve_sandbox):
    return serve_sandbox("setupstore", APP_KEY, APP_TOKEN, seed=7)


def fill(browser, name, value):
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def save(browser):
    click_through(browser, browser.find_element(By.NAME, "_save"))


def store_action(browser, store_name, label):
    browser.get(browser.base_url + "/admin/integration/account/")
    for row in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"):
        if store_name in row.text:
            row.find_element(By.CSS_SELECTOR, "input.action-select").click()
            break
    else:
        raise AssertionError(f"no row for {store_name}:\n{text(browser)}")
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text(label)
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "button[name=index], input[name=index]"))
    return messages(browser)


def store_row(browser, store_name):
    browser.get(browser.base_url + "/admin/integration/account/")
    for row in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"):
        if store_name in row.text:
            return row
    raise AssertionError(f"no row for {store_name}")


def open_store(browser, store_name):
    browser.get(browser.base_url + "/admin/integration/account/")
    click_through(browser, browser.find_element(By.LINK_TEXT, store_name))


@pytest.mark.django_db(transaction=True)
def test_set_up_a_store_from_scratch(browser, login, superuser, sandbox, erp, settings):
    settings.DISPATCH_CONCURRENCY = 1
    login("boss", "boss-password-123")

    # 1. Add the store through the form; the token is write-only.
    browser.get(browser.base_url + "/admin/integration/account/add/")
    fill(browser, "name", "Setup store")
    fill(browser, "account_name", "setupstore")
    fill(browser, "app_key", APP_KEY)
    fill(browser, "app_token", APP_TOKEN)
    fill(browser, "api_base_url", sandbox.url)
    save(browser)
    assert "was added successfully" in messages(browser), text(browser)
    store = Account.objects.get(app_key=APP_KEY)
    assert store.app_token == APP_TOKEN and APP_TOKEN not in browser.page_source

    # 2. Test its connection: VTEX's (the sandbox's) feed configuration and backlog.
    message = store_action(browser, "Setup store", "Test connection (read the feed configuration)")
    assert "Setup store: connected. VTEX's feed for this app key: FromWorkflow [ready-for-handling, canceled]" in message
    assert "0 messages in the feed" in message
    assert "0 waiting" in store_row(browser, "Setup store").text
    calls = sandbox.stats()["calls"]
    assert calls["feed_config_get"] == 1 and "feed_retrieve" not in calls   # never retrieve: it would hide events

    # 3. Edit the feed configuration: a misspelled status is refused with a "did you mean".
    open_store(browser, "Setup store")
    fill(browser, "feed_config-0-other_statuses", "invoiced, ready-for-handlng")
    save(browser)
    page = text(browser)
    assert "Unknown OMS status: 'ready-for-handlng' (did you mean 'ready-for-handling'?)" in page, page
    fill(browser, "feed_config-0-other_statuses", "")
    browser.find_element(By.CSS_SELECTOR, "input[name='feed_config-0-statuses'][value='invoiced']").click()
    save(browser)
    assert "was changed successfully" in messages(browser), text(browser)
    assert Account.objects.get(pk=store.pk).feed_config.statuses == ["ready-for-handling", "invoiced", "canceled"]

    # ... and push it: the confirmation page shows the difference and the shared-feed warning first.
    open_store(browser, "Setup store")
    click_id(browser, "feed-push")
    assert "Every consumer of this app key shares this one feed" in browser.find_element(By.ID, "shared-warning").text
    added = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#feed-diff .diff-add")]
    assert any('"invoiced"' in line for line in added), added
    assert sandbox.feed_config_get(APP_KEY)["filter"]["status"] == ["ready-for-handling", "canceled"]  # not yet
    click_id(browser, "confirm-feed")
    assert "feed configuration pushed to VTEX: FromWorkflow [ready-for-handling, invoiced, canceled]" in messages(browser)
    assert sandbox.feed_config_get(APP_KEY)["filter"]["status"] == ["ready-for-handling", "invoiced", "canceled"]

    # 4. Bind a webhook adapter: a bad setting is refused under its field, then fixed.
    click_id(browser, "add-binding")
    click_id(browser, "choose-webhook")
    fill(browser, "name", "Loopback ERP")
    fill(browser, "setting__url", "ftp://x")
    save(browser)
    assert "Enter a valid http or https URL (with a host)." in text(browser)
    assert not AdapterBinding.objects.exists()
    fill(browser, "setting__url", erp.url + "/orders")
    save(browser)
    assert "Adapter binding" in messages(browser) and "added" in messages(browser), text(browser)
    binding = AdapterBinding.objects.get()
    assert binding.account_id == store.pk and binding.settings["url"] == erp.url + "/orders"

    # 5. Pause the store: an order comes in and is stored, but nothing is sent; its sync waits.
    message = store_action(browser, "Setup store", "Pause (keep receiving, send nothing)")
    assert "Setup store: paused" in message
    [order_id] = sandbox.create_orders(APP_KEY, 1)
    summary = run_feed_cycle(Account.objects.get(pk=store.pk))
    assert summary.ok and summary.new == 1, summary.line()
    report = dispatch_due(budget=10)
    assert report.succeeded == 0 and erp.received == []
    assert OrderSync.objects.get().status == SyncStatus.PENDING
    row = store_row(browser, "Setup store")
    assert "paused" in row.text and row.find_element(By.CSS_SELECTOR, "a.syncs-pending").text == "1"

    # ... resume it: the waiting sync goes.
    message = store_action(browser, "Setup store", "Resume")
    assert "Setup store: resumed: its 1 pending sync goes out now." in message
    report = dispatch_due(budget=10)
    assert report.succeeded == 1, report.line()
    assert len(erp.received) == 1 and OrderSync.objects.get().status == SyncStatus.SUCCEEDED
    assert order_id in str(erp.received[0])
    row = store_row(browser, "Setup store")
    assert row.find_element(By.CSS_SELECTOR, "a.syncs-pending").text == "0"

    # The dashboard has it too.
    browser.get(browser.base_url + "/admin/")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "#content-main #integration-dashboard a"))
    assert "Health dashboard" in browser.title
    section = browser.find_element(By.ID, f"store-{store.pk}")
    assert "Syncs created in the last 24 h: 1" in section.text and "Delivered" in section.text
    assert section.find_element(By.CSS_SELECTOR, "svg.hourly-chart")
