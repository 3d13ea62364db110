"""Dispatch works per lot: the statements it runs for a lot of orders do not grow with the lot.

Each order still costs its two VTEX calls and its ERP call, but the hub's own bookkeeping (the
claim, the attempt rows saved before the calls, the outcomes, start-handling, the breaker) is
written in a few set-based statements for the whole lot.
"""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integration.models import AttemptOutcome, Order, OrderSync, StartHandlingState, SyncAttempt, SyncStatus
from integration.pipeline.dispatch import dispatch_batch
from tests.shared_fixtures import make_binding

pytestmark = pytest.mark.django_db

ERP_URL = "https://erp.example.com/orders"


def _lot(account, binding, oms, first, size):
    for n in range(first, first + size):
        order_id = f"{5000 + n}-01"
        oms.add(order_id)
        order = Order.objects.create(account=account, order_id=order_id, vtex_status="ready-for-handling")
        OrderSync.objects.create(order=order, binding=binding, action="send", next_attempt_at=timezone.now())


def _statements_for_a_lot(account, binding, oms, first, size):
    _lot(account, binding, oms, first, size)
    with CaptureQueriesContext(connection) as ctx:
        report = dispatch_batch(limit=size)
    assert report.orders == size and report.succeeded == size
    assert report.start_handling == {StartHandlingState.DONE: size}
    return len(ctx.captured_queries)


def test_the_statements_of_a_lot_do_not_grow_with_its_size(account, oms, vtex):
    vtex.add("POST", ERP_URL, json={"id": "ERP-1"}, status=200)
    binding = make_binding(account, url=ERP_URL)
    ten = _statements_for_a_lot(account, binding, oms, 0, 10)
    thirty = _statements_for_a_lot(account, binding, oms, 100, 30)
    # Per order it used to be about ten statements (300 for 30 orders); per lot a few dozen at most.
    assert thirty <= ten + 3, (ten, thirty)
    assert ten <= 30, ten
    assert SyncAttempt.objects.filter(outcome=AttemptOutcome.SUCCEEDED).count() == 40
    assert OrderSync.objects.filter(status=SyncStatus.SUCCEEDED, attempts=1).count() == 40
    assert Order.objects.filter(start_handling_state=StartHandlingState.DONE).count() == 40
    assert set(oms.start_handling_calls.values()) == {1} and len(oms.start_handling_calls) == 40


def test_failures_keep_their_excerpts_successes_one_in_n(account, oms, vtex, settings):
    settings.SUCCESS_EXCERPT_EVERY = 5
    vtex.add("POST", ERP_URL, json={"id": "ERP-1"}, status=200)
    binding = make_binding(account, url=ERP_URL)
    _statements_for_a_lot(account, binding, oms, 0, 10)
    kept = SyncAttempt.objects.filter(outcome=AttemptOutcome.SUCCEEDED).exclude(request_excerpt="")
    assert kept.count() == 2  # ten deliveries in a row, one in five keeps what was sent
    assert all(a.request_excerpt.startswith("POST https://erp.example.com/orders") and "[redacted]" in a.request_excerpt
               for a in kept)  # the bearer token is not in it
    vtex.replace("POST", ERP_URL, body="ERP down", status=500)
    _lot(account, binding, oms, 100, 3)
    report = dispatch_batch(limit=3)
    assert report.retrying == 3
    failed = SyncAttempt.objects.filter(outcome=AttemptOutcome.TRANSIENT)
    assert failed.count() == 3 and all("POST https://erp.example.com" in a.request_excerpt and "ERP down" in a.response_excerpt
                                       for a in failed)


def test_a_lot_does_not_read_the_snapshots_it_replaces(account, oms, vtex):
    vtex.add("POST", ERP_URL, json={"id": "ERP-1"}, status=200)
    binding = make_binding(account, url=ERP_URL)
    _lot(account, binding, oms, 0, 3)
    Order.objects.update(snapshot={"items": [{"name": "x" * 100}] * 50})  # fetched before: a retry's order
    with CaptureQueriesContext(connection) as ctx:
        report = dispatch_batch(limit=3)
    assert report.succeeded == 3
    reads = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT") and 'FROM "integration_order"' in q["sql"]]
    assert reads and not [sql for sql in reads if '"snapshot"' in sql], reads
    assert all(o.snapshot["orderId"] == o.order_id for o in Order.objects.all())  # VTEX's answer replaced it
