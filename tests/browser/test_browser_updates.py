"""An operator and the way back, in a real browser: invoices VTEX kept refusing are on the Failed
updates page; the operator retries one, resolves one by hand and abandons one from the lists, then
types an invoice by hand for an order the ERP never invoiced, and it reaches VTEX once.

VTEX is the project's sandbox over real HTTP; the feed cycle, dispatcher and outbox run in the test
process, the admin in live_server; the operator is a member of the Operators group.
"""
import pytest
from selenium.webdriver.common.by import By

from integration.models import Account, AdapterBinding, Order, StartHandlingState, UpdateSource, UpdateStatus, VtexUpdate
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.pipeline.outbox import send_due
from integration.pipeline.update_intake import accept_update
from tests.browser.pages import click_id, click_link, click_through, messages, row_of, run_action, text
from tests.shared_fixtures import ensure_operators_group

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP_KEY = "vtexappkey-backstore-BROWSER"
APP_TOKEN = "back-store-token-SECRET-4343"


@pytest.fixture
def sandbox(serve_sandbox):
    return serve_sandbox("backstore", APP_KEY, APP_TOKEN, seed=9)


@pytest.fixture
def store(sandbox, erp, live_server):
    account = Account(name="Back store", account_name="backstore", app_key=APP_KEY, api_base_url=sandbox.url)
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


def invoice(sandbox, order_id):
    order = sandbox.order(APP_KEY, order_id)
    items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
    return {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": f"NF-{order_id}",
            "invoiceValue": order["value"], "items": items}


def status(order_id):
    return VtexUpdate.objects.filter(order__order_id=order_id).values_list("status", flat=True).get()


@pytest.mark.django_db(transaction=True)
def test_operator_retries_resolves_abandons_updates_and_enters_an_invoice_by_hand(browser, login, operator, sandbox, store, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    settings.DISPATCH_CONCURRENCY = 1
    retried, by_hand, dropped, typed = sandbox.create_orders(APP_KEY, 4)
    assert run_feed_cycle(store).ok
    dispatch_due(budget=10)
    assert Order.objects.filter(start_handling_state=StartHandlingState.DONE).count() == 4
    # The ERP invoices three of them; VTEX answers 500 to each, and one attempt is all they get.
    sandbox.faults.update({"server_error": [{"route": "invoice", "count": 3, "status": 500}]})
    for order_id in (retried, by_hand, dropped):
        accept_update(store, order_id, "invoice", invoice(sandbox, order_id), source=UpdateSource.API, who="browser test")
    report = send_due(budget=10)
    assert report.failed == 3, report.line()

    # The Failed updates page: which orders, and VTEX's answer.
    login("olga", "olga-password-123")
    click_link(browser, "Failed updates to VTEX")
    page = text(browser)
    assert retried in page and by_hand in page and dropped in page
    assert "invoice answered 500" in row_of(browser, retried).text

    # VTEX is back: retry one from the list; it goes out at the next send.
    message = run_action(browser, retried, "Retry now")
    assert "Retrying now: 1 update in 1 store." in message
    assert retried not in text(browser).split("Filter")[0]
    assert send_due(budget=10).sent == 1
    assert status(retried) == UpdateStatus.SENT and sandbox.stats()["invoices_ok"] == {retried: 1}

    # One was typed into VTEX's admin by someone: resolved by hand. One is not wanted: abandoned.
    message = run_action(browser, by_hand, "Mark resolved — done by hand in VTEX")
    assert "Marked resolved (done by hand in VTEX): 1 update" in message
    message = run_action(browser, dropped, "Abandon")
    assert "Abandoned: 1 update" in message
    assert (status(by_hand), status(dropped)) == (UpdateStatus.RESOLVED, UpdateStatus.ABANDONED)
    assert not browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")  # the Failed updates page is empty
    # The list of every update says who resolved which.
    click_link(browser, "Home")
    click_link(browser, "Updates to VTEX")
    assert "Resolved by hand" in row_of(browser, by_hand).text and "Resolved: abandoned" in row_of(browser, dropped).text
    assert send_due(budget=10).sent == 0  # nothing more goes to VTEX for them

    # The ERP is down for the fourth order: the operator types its invoice on the order page.
    click_link(browser, "Home")
    click_link(browser, "Orders")
    click_link(browser, typed)
    click_id(browser, "enter-invoice")
    body = invoice(sandbox, typed)
    form = browser.find_element(By.ID, "enter-invoice-form")
    form.find_element(By.NAME, "invoice_number").send_keys(body["invoiceNumber"])
    form.find_element(By.NAME, "issuance_date").send_keys("yesterday")  # not ISO 8601: refused, naming the field
    form.find_element(By.NAME, "invoice_value").send_keys(str(body["invoiceValue"]))
    assert "price" in form.find_element(By.NAME, "items").get_attribute("value")  # the order's items, filled in
    click_through(browser, form.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "issuanceDate" in browser.find_element(By.ID, "enter-invoice-form").text
    assert not VtexUpdate.objects.filter(order__order_id=typed).exists()
    date = browser.find_element(By.NAME, "issuance_date")
    date.clear()
    date.send_keys(body["issuanceDate"])
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "#enter-invoice-form input[type=submit]"))
    assert f"Invoice NF-{typed}: " in messages(browser)
    assert "Queued" in browser.find_element(By.CSS_SELECTOR, "#updates .update").text
    assert send_due(budget=10).sent == 1
    browser.refresh()
    entry = browser.find_element(By.CSS_SELECTOR, "#updates .update")
    assert "Sent" in entry.text and "olga" in entry.text
    stats = sandbox.stats()
    assert stats["invoices_ok"] == {retried: 1, typed: 1}
    assert stats["statuses"][typed] == "invoiced"
    update = VtexUpdate.objects.get(order__order_id=typed)
    assert (update.source, update.created_by.username, update.body["items"]) == (UpdateSource.OPERATOR, "olga", body["items"])
