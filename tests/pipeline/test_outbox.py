"""The outbox to VTEX: order of operations, retries, VTEX's 4xx, 429/503 pauses, effects on the order."""
import pytest

from integration.models import (
    AttemptOutcome, Order, RoutePause, StartHandlingState, UpdateAttempt, UpdateSource, UpdateStatus, VtexUpdate,
)
from integration.pipeline.outbox import send_due
from integration.pipeline.update_intake import UpdateRefused, accept_update
from tests.fake_vtex_updates import DELIVERY, TRACKING, invoice_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def oms(vtex_updates):
    """The way back's VTEX: FakeOms plus the invoice, tracking and cancel calls."""
    return vtex_updates


def accept(account, kind, body, order_id="1001-01", invoice_number=""):
    return accept_update(account, order_id, kind, body, invoice_number=invoice_number, source=UpdateSource.ADAPTER, who="tests").update


def test_invoice_tracking_and_delivery_go_out_in_order_and_the_order_shows_invoiced(account, handled_order, oms):
    # Accepted in the wrong order: delivery events, tracking, then the invoice.
    delivery = accept(account, "delivery", DELIVERY, invoice_number="NF-1")
    tracking = accept(account, "tracking", TRACKING, invoice_number="NF-1")
    invoice = accept(account, "invoice", invoice_body())
    report = send_due(budget=10)
    assert [c[0] for c in oms.calls] == ["invoice", "tracking", "delivery"]
    assert report.sent == 3
    for update in (invoice, tracking, delivery):
        update.refresh_from_db()
        assert update.status == UpdateStatus.SENT and update.vtex_receipt
        assert update.attempt_log.get().outcome == AttemptOutcome.SUCCEEDED
    assert oms.calls[0][3] == {**invoice_body(), "invoiceValue": "5970"}  # VTEX's body; the cents as its spec types them
    assert Order.objects.get(pk=handled_order.pk).vtex_status == "invoiced"
    assert oms.invoices["1001-01"]["NF-1"]["trackingNumber"] == "TRK-1"
    assert send_due(budget=10).sent == 0 and len(oms.calls) == 3  # nothing twice


def test_an_invoice_before_start_handling_is_held_then_sent(account, oms):
    oms.add("1001-01", "ready-for-handling")
    order = Order.objects.create(account=account, order_id="1001-01", vtex_status="ready-for-handling")
    invoice = accept(account, "invoice", invoice_body())
    tracking = accept(account, "tracking", TRACKING, invoice_number="NF-1")
    report = send_due(budget=10)
    assert report.held == 2 and oms.calls == []
    invoice.refresh_from_db()
    tracking.refresh_from_db()
    assert invoice.status == UpdateStatus.HELD and "start-handling" in invoice.hold_reason
    assert tracking.status == UpdateStatus.HELD and "NF-1" in tracking.hold_reason
    # start-handling happens (the dispatcher's job); VTEX moves the order to handling.
    oms.statuses["1001-01"] = "handling"
    Order.objects.filter(pk=order.pk).update(start_handling_state=StartHandlingState.DONE)
    report = send_due(budget=10)
    assert report.sent == 2 and [c[0] for c in oms.calls] == ["invoice", "tracking"]


def test_a_cancel_is_sent_and_records_who_and_is_refused_once_invoiced(account, handled_order, oms):
    cancel = accept(account, "cancel", {"reason": "customer asked"})
    send_due(budget=10)
    cancel.refresh_from_db()
    assert cancel.status == UpdateStatus.SENT and oms.calls[-1][0] == "cancel"
    order = Order.objects.get(pk=handled_order.pk)
    assert order.canceled and "tests" in order.canceled_by
    oms.add("1002-01", "handling")
    Order.objects.create(account=account, order_id="1002-01", vtex_status="invoiced", start_handling_state=StartHandlingState.DONE)
    with pytest.raises(UpdateRefused, match="invoiced"):
        accept(account, "cancel", {}, order_id="1002-01")


def test_a_cancel_queued_before_an_invoice_was_sent_fails_with_the_reason(account, handled_order, oms):
    invoice = accept(account, "invoice", invoice_body())
    cancel = accept(account, "cancel", {"reason": "late"})
    send_due(budget=10)
    invoice.refresh_from_db()
    cancel.refresh_from_db()
    assert invoice.status == UpdateStatus.SENT
    assert cancel.status == UpdateStatus.FAILED and "invoiced" in cancel.last_error
    assert oms.count("cancel") == 0


def test_vtex_5xx_retries_on_the_backoff_schedule_then_sends(account, handled_order, oms, settings):
    settings.SYNC_BACKOFF_SECONDS = [60]
    oms.answer["invoice"] = [(500, {"error": {"message": "boom"}})]
    update = accept(account, "invoice", invoice_body())
    report = send_due(budget=10)
    update.refresh_from_db()
    assert report.retrying == 1 and update.status == UpdateStatus.QUEUED and update.attempts == 1
    assert "500" in update.last_error
    attempt = update.attempt_log.get()
    assert attempt.outcome == AttemptOutcome.TRANSIENT and attempt.http_status == 500 and "NF-1" in attempt.request_excerpt
    assert send_due(budget=10).sent == 0  # not due yet
    VtexUpdate.objects.update(next_attempt_at="2000-01-01T00:00:00Z")
    assert send_due(budget=10).sent == 1
    assert oms.count("invoice") == 2


def test_vtex_4xx_is_permanent_with_vtexs_message(account, handled_order, oms):
    oms.answer["invoice"] = [(400, {"error": {"code": "1", "message": "Invoice value does not match the items"}})]
    update = accept(account, "invoice", invoice_body())
    report = send_due(budget=10)
    update.refresh_from_db()
    assert report.failed == 1 and update.status == UpdateStatus.FAILED
    assert "Invoice value does not match the items" in update.last_error
    assert send_due(budget=10).sent == 0 and oms.count("invoice") == 1


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_pause_the_route_and_postpone_without_counting_an_attempt(account, handled_order, oms, status):
    oms.answer["tracking"] = [(status, {})]
    accept(account, "invoice", invoice_body())
    tracking = accept(account, "tracking", TRACKING, invoice_number="NF-1")
    report = send_due(budget=10)
    tracking.refresh_from_db()
    assert report.sent == 1 and report.postponed == 1
    assert tracking.status == UpdateStatus.QUEUED and tracking.attempts == 0 and tracking.next_attempt_at is not None
    assert RoutePause.objects.filter(account=account, route="invoice_tracking").exists()
    assert send_due(budget=10).sent == 0 and oms.count("tracking") == 1  # the route waits


def test_a_worker_that_died_mid_call_leaves_the_update_to_be_sent_again(account, handled_order, oms):
    update = accept(account, "invoice", invoice_body())
    VtexUpdate.objects.filter(pk=update.pk).update(status=UpdateStatus.SENDING, claimed_by="dead", claimed_until="2000-01-01T00:00:00Z")
    UpdateAttempt.objects.create(update=update, number=1, worker="dead")
    report = send_due(budget=10)
    assert report.recovered == 1 and report.sent == 1
    update.refresh_from_db()
    assert [a.outcome for a in update.attempt_log.order_by("pk")] == [AttemptOutcome.TRANSIENT, AttemptOutcome.SUCCEEDED]


def test_a_paused_store_sends_nothing(account, handled_order, oms):
    accept(account, "invoice", invoice_body())
    account.set_paused(True)
    assert send_due(budget=10).sent == 0 and oms.calls == []


def test_an_invoice_for_an_order_whose_start_handling_will_not_happen_says_how_to_unblock_it(account, oms):
    oms.add("1001-01", "ready-for-handling")
    Order.objects.create(account=account, order_id="1001-01", vtex_status="ready-for-handling",
                         start_handling_state=StartHandlingState.ABANDONED)
    invoice = accept(account, "invoice", invoice_body())
    send_due(budget=10)
    invoice.refresh_from_db()
    assert invoice.status == UpdateStatus.HELD and oms.calls == []
    assert "will not call it by itself" in invoice.hold_reason and "Start handling anyway" in invoice.hold_reason
    assert "as soon as it is done" not in invoice.hold_reason
