"""A poison order (an answer dispatch cannot use or store, or an error nobody anticipated) is a
recorded attempt on the backoff schedule, failed at the maximum: never a sync re-claimed at once."""
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integration.models import AttemptOutcome, Order, OrderSync, StartHandlingState, SyncAttempt, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from tests.fake_feed import BASE, feed_item
from tests.fake_oms import make_order

pytestmark = pytest.mark.django_db
ORDER_URL = f"{BASE}/api/oms/pvt/orders/1-01"


def _due_again():
    OrderSync.objects.filter(status=SyncStatus.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def _get_order_calls(vtex):
    return sum(1 for call in vtex.calls if call.request.method == "GET" and call.request.url == ORDER_URL)


def _deeply_nested_order():
    return '{"orderId": "1-01", "status": "ready-for-handling", "items": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _nested_within_json_limits():
    return '{"orderId": "1-01", "status": "ready-for-handling", "items": ' + "[" * 500 + "]" * 500 + "}"


POISON_ANSWERS = {
    "nested beyond the JSON reader": (_deeply_nested_order, "nested too deeply"),
    "nested deeper than can be stored": (_nested_within_json_limits, "nested more than"),
    "a NUL in the order JSON": (lambda: json.dumps(dict(make_order("1-01"), note="a\x00b")), "NUL"),
    "a status longer than its column": (lambda: json.dumps(make_order("1-01", status="x" * 80)), "80 characters"),
    "a JSON list, not an object": (lambda: "[1, 2]", "not an object"),
    "not JSON at all": (lambda: "<html>", "not JSON"),
}


@pytest.mark.parametrize("answer,reason", POISON_ANSWERS.values(), ids=list(POISON_ANSWERS))
def test_a_poison_get_order_answer_is_a_backed_off_attempt_then_failed(answer, reason, account, bindings, feed, vtex, recorder, settings, admin_client):
    settings.SYNC_BACKOFF_SECONDS = [60, 300]
    settings.SYNC_MAX_ATTEMPTS = 3
    vtex.get(ORDER_URL, body=answer(), content_type="application/json")
    feed.add(feed_item("1-01"))
    assert run_feed_cycle(account).ok

    report = dispatch_due(budget=3)  # the old behaviour re-claimed the order for the whole budget
    assert _get_order_calls(vtex) == 1
    assert report.retrying == 2 and report.orders == 1
    for sync in OrderSync.objects.filter(order__order_id="1-01"):
        assert sync.status == SyncStatus.PENDING and sync.attempts == 1 and reason in sync.last_error
        assert 55 <= (sync.next_attempt_at - timezone.now()).total_seconds() <= 61
        attempt = SyncAttempt.objects.get(sync=sync)
        assert attempt.outcome == AttemptOutcome.TRANSIENT and reason in attempt.error
    assert Order.objects.get(order_id="1-01").snapshot is None  # nothing unstorable was stored

    for _ in range(2):
        _due_again()
        dispatch_due(budget=3)
    assert _get_order_calls(vtex) == 3
    failed = OrderSync.objects.filter(order__order_id="1-01", status=SyncStatus.FAILED)
    assert failed.count() == 2 and all("gave up after 3 attempts" in s.last_error for s in failed)
    assert recorder.calls == []  # no adapter ever saw the poison order
    page = admin_client.get(reverse("admin:integration_failedsync_changelist"))
    assert page.status_code == 200 and b"1-01" in page.content


def test_an_unexpected_error_is_an_attempt_with_its_traceback(account, bindings, feed, vtex, recorder, settings):
    """Something the client does not anticipate (here the transport raises a plain RuntimeError)."""
    settings.SYNC_BACKOFF_SECONDS = [60]
    vtex.get(ORDER_URL, body=RuntimeError("transport surprise"))
    feed.add(feed_item("1-01"))
    assert run_feed_cycle(account).ok

    report = dispatch_due(budget=3)
    assert _get_order_calls(vtex) == 1 and report.retrying == 2
    for sync in OrderSync.objects.filter(order__order_id="1-01"):
        assert sync.status == SyncStatus.PENDING and sync.attempts == 1 and "transport surprise" in sync.last_error
        assert sync.next_attempt_at > timezone.now() + timedelta(seconds=50)
        attempt = SyncAttempt.objects.get(sync=sync)
        assert attempt.outcome == AttemptOutcome.TRANSIENT
        assert "RuntimeError: transport surprise" in attempt.error and "Traceback" in attempt.traceback


def test_an_unexpected_error_in_start_handling_is_rescheduled_then_failed(account, bindings, feed, vtex, recorder, settings):
    settings.SYNC_BACKOFF_SECONDS = [60]
    settings.START_HANDLING_MAX_ATTEMPTS = 2
    vtex.get(ORDER_URL, json=make_order("1-01"))
    vtex.post(f"{ORDER_URL}/start-handling", body=RuntimeError("start-handling surprise"))
    feed.add(feed_item("1-01"))
    assert run_feed_cycle(account).ok
    dispatch_due(budget=3)
    order = Order.objects.get(order_id="1-01")
    assert order.start_handling_state == StartHandlingState.PENDING and order.start_handling_attempts == 1
    assert "start-handling surprise" in order.start_handling_record and "Traceback" in order.start_handling_record
    assert order.start_handling_due_at > timezone.now() + timedelta(seconds=50)
    calls = sum(1 for c in vtex.calls if c.request.url.endswith("/start-handling"))
    assert calls == 1

    Order.objects.filter(pk=order.pk).update(start_handling_due_at=timezone.now() - timedelta(seconds=1))
    dispatch_due(budget=3)
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.FAILED and "gave up after 2 attempts" in order.start_handling_record
