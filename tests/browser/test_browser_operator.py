"""An operator's day, in a real browser: a sync fails because the ERP answers 500, the operator sees
why, retries it, and resolves another by hand; an operator never gets at a store's credentials.

The VTEX side is the project's sandbox over real HTTP, the ERP a LoopbackERP behind the webhook
adapter; the feed cycle and the dispatcher run in the test process, the admin in live_server.
"""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import Account, AdapterBinding, Order, OrderSync, StartHandlingState, SyncStatus
from tests.browser.pages import click_link, click_through, row_of, run_action, text
from tests.shared_fixtures import ensure_operators_group

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP_KEY = "vtexappkey-opsstore-BROWSER"
APP_TOKEN = "ops-store-token-SECRET-4242"


@pytest.fixture
def sandbox(serve_sandbox):
    return serve_sandbox("opsstore", APP_KEY, APP_TOKEN, seed=5)


@pytest.fixture
def store(sandbox, erp, live_server):
    account = Account(name="Ops store", account_name="opsstore", app_key=APP_KEY, api_base_url=sandbox.url)
    account.app_token = APP_TOKEN
    account.save()
    binding = AdapterBinding(account=account, adapter_key="webhook", name="Loopback ERP")
    binding.apply_settings({"url": erp.url + "/orders"})
    binding.save()
    return account


@pytest.fixture
def operator(django_user_model):
    group = ensure_operators_group()  # a transactional test's flush empties auth_group
    user = django_user_model.objects.create_user("olga", "olga@example.com", "olga-password-123", is_staff=True)
    user.groups.add(group)
    return user


def log_out(browser):
    browser.delete_all_cookies()


@pytest.mark.django_db(transaction=True)
def test_operator_sees_a_failure_retries_it_and_resolves_another_by_hand(browser, login, superuser, sandbox, erp, store, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    settings.DISPATCH_CONCURRENCY = 1
    retried, by_hand = sandbox.create_orders(APP_KEY, 2)
    erp.fail_with(500)
    summary = run_feed_cycle(store)
    assert summary.ok, summary.error
    report = dispatch_due(budget=10)
    assert report.failed == 2, report.line()
    assert OrderSync.objects.filter(status=SyncStatus.FAILED).count() == 2

    # The failed syncs page says which orders failed and why.
    login("boss", "boss-password-123")
    click_link(browser, "Failed syncs")
    page = text(browser)
    assert retried in page and by_hand in page
    assert "answered HTTP 500" in page and "gave up after 1 attempts" in page

    # The ERP is back: retry one of them from the list.
    erp.recover()
    message = run_action(browser, retried, "Retry now")
    assert "Retrying now: 1 sync in 1 store." in message
    assert retried not in text(browser).split("Filter")[0] and by_hand in text(browser)
    report = dispatch_due(budget=10)
    assert report.succeeded == 1, report.line()

    # Its order page: the sync succeeded, the attempts are there, start-handling is done.
    click_link(browser, "Home")
    click_link(browser, "Orders")
    click_link(browser, retried)
    page = text(browser)
    assert f"Order {retried}" in page
    sync_box = browser.find_element(By.CSS_SELECTOR, "#syncs .sync")
    assert "Delivered" in sync_box.text and "answered HTTP 500" in sync_box.text  # the failed attempt stays in the timeline
    assert len(sync_box.find_elements(By.CSS_SELECTOR, "tr.attempt")) == 2
    assert "done" in browser.find_element(By.ID, "start-handling-state").text
    assert "204" in browser.find_element(By.ID, "start-handling-record").text
    link = browser.find_element(By.ID, "vtex-admin-link")
    assert link.get_attribute("href") == f"https://opsstore.myvtex.com/admin/orders/{retried}"
    browser.find_element(By.CSS_SELECTOR, "#raw-json summary").click()
    assert f'"orderId": "{retried}"' in browser.find_element(By.CSS_SELECTOR, "#raw-json pre").text
    assert len(erp.received) == 1 and sandbox.stats()["start_handling_ok"] == {retried: 1}

    # The other one was keyed into the ERP by hand: say so.
    click_link(browser, "Home")
    click_link(browser, "Failed syncs")
    message = run_action(browser, by_hand, "Mark resolved — delivered by hand")
    assert "Resolved as delivered by hand: 1 sync in 1 store. Start-handling is now due for 1 order." in message
    sync = OrderSync.objects.get(order__order_id=by_hand)
    assert sync.status == SyncStatus.DELIVERED_BY_HAND and sync.resolved_by == superuser
    assert Order.objects.get(order_id=by_hand).start_handling_due_at is not None
    dispatch_due(budget=10)
    assert Order.objects.get(order_id=by_hand).start_handling_state == StartHandlingState.DONE
    assert len(erp.received) == 1  # nothing was sent again


@pytest.mark.django_db(transaction=True)
def test_an_operator_cannot_get_at_store_credentials(browser, login, store, operator):
    login("olga", "olga-password-123")
    click_link(browser, "Stores")
    click_link(browser, "Ops store")
    page_source = browser.page_source
    assert "Ops store" in text(browser)
    assert not browser.find_elements(By.NAME, "app_token")
    assert not browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
    assert not browser.find_elements(By.NAME, "_save")
    assert store.app_token_ciphertext[:24] not in page_source
    # The binding's settings (its endpoint) are not shown to operators either.
    click_link(browser, "Home")
    click_link(browser, "Adapter bindings")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr a"))
    assert "/orders" not in text(browser) and not browser.find_elements(By.NAME, "_save")
    # But the operator runs the hub: the failed syncs page and its actions are there.
    click_link(browser, "Home")
    click_link(browser, "Failed syncs")
    options = [o.text for o in Select(browser.find_element(By.NAME, "action")).options]
    assert "Retry now" in options and "Mark resolved — delivered by hand" in options
    assert browser.find_element(By.ID, "retry-matching")


@pytest.mark.django_db(transaction=True)
def test_an_operator_viewing_a_store_sees_no_token(browser, login, store, operator):
    login("olga", "olga-password-123")
    click_link(browser, "Stores")
    click_link(browser, "Ops store")
    assert APP_TOKEN not in browser.page_source


@pytest.mark.django_db(transaction=True)
def test_an_abandoned_order_says_start_handling_will_not_happen_and_can_be_called_anyway(browser, login, operator, sandbox, erp, store, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    settings.DISPATCH_CONCURRENCY = 1
    [order_id] = sandbox.create_orders(APP_KEY, 1)
    erp.fail_with(500)
    assert run_feed_cycle(store).ok
    assert dispatch_due(budget=10).failed == 1

    # The ERP got the order another way; the operator abandons the sync on the order page.
    login("olga", "olga-password-123")
    click_link(browser, "Orders")
    click_link(browser, order_id)
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "#syncs button[value=abandon_sync]"))
    assert "Start-handling will not be called for 1 order" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    section = browser.find_element(By.ID, "start-handling").text
    assert "Not going to happen" in section and "will not be called for this order" in section
    assert browser.find_element(By.ID, "start-handling-decided-by").text == "olga"
    assert not browser.find_elements(By.CSS_SELECTOR, "button[value=retry_start_handling]")

    # Then decides VTEX should move it on after all.
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "button[value=start_handling_anyway]"))
    assert "called anyway: 1 order" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    dispatch_due(budget=10)
    browser.refresh()
    assert "done" in browser.find_element(By.ID, "start-handling-state").text
    assert browser.find_element(By.ID, "start-handling-decided-by").text == "olga"
    assert sandbox.stats()["start_handling_ok"] == {order_id: 1} and erp.received == []
