""""Retry now" makes the work due now and enqueues it, so it runs within seconds, not at the next scheduled dispatch."""
from datetime import timedelta

import pytest
import responses
from django.db.models.functions import Now
from django.utils import timezone

from integration import queueing
from integration.models import AdapterBinding, Order, OrderSync, SyncStatus
from integration.operations import syncs as sync_ops
from integration.pipeline import breaker
from integration.pipeline.dispatch import dispatch_due, due_syncs
from tests.shared_fixtures import make_hub_order, make_sync
from tests.fake_oms import FakeOms

pytestmark = pytest.mark.django_db
ERP = "https://erp.example.com/orders"


def db_now():
    return Order.objects.annotate(now=Now()).values_list("now", flat=True).first() or timezone.now()


@pytest.fixture
def broker_calls(monkeypatch):
    """What reached the broker: the real enqueue_dispatch (with its de-duplication), the broker recorded."""
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue", lambda func, *args, **kw: calls.append((func, args)))
    return calls


def test_retry_now_enqueues_even_right_after_an_intake_dispatch(account, binding, broker_calls,
                                                               django_capture_on_commit_callbacks):
    sync = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):  # intake decides after its commit
        queueing.enqueue_dispatch(account.pk)  # intake asked a moment ago; that dispatch may have found nothing
        queueing.enqueue_dispatch(account.pk)  # a second intake batch before it started is folded into it
    assert broker_calls == [(queueing.DISPATCH_TASK, (account.pk,))]

    outcome = sync_ops.retry_syncs(OrderSync.objects.filter(pk=sync.pk))

    assert outcome.changed == 1
    assert broker_calls == [(queueing.DISPATCH_TASK, (account.pk,))] * 2
    sync.refresh_from_db()
    assert sync.status == SyncStatus.PENDING and sync.next_attempt_at <= db_now()
    assert list(due_syncs()) == [sync]


def test_retry_now_with_the_adapters_breaker_open_probes_now(account, binding, vtex, enqueued, settings):
    settings.DISPATCH_CONCURRENCY = 1
    oms = FakeOms(vtex)
    for order_id in ("1-01", "2-01"):
        oms.add(order_id)
    syncs = [make_sync(make_hub_order(account, order_id), binding, SyncStatus.FAILED) for order_id in ("1-01", "2-01")]
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=settings.BREAKER_THRESHOLD,
                                                         breaker_open_until=timezone.now() + timedelta(seconds=60))
    vtex.add(responses.POST, ERP, json={"id": "ERP-1"})

    outcome = sync_ops.retry_syncs(OrderSync.objects.filter(pk__in=[s.pk for s in syncs]))

    assert "The circuit breaker of 1 adapter was open: the next call goes out now as a probe" in outcome.message
    assert enqueued == [account.pk]
    assert due_syncs().count() == 2  # not kept out by the open breaker
    dispatch_due(budget=10)
    assert set(OrderSync.objects.values_list("status", flat=True)) == {SyncStatus.SUCCEEDED}
    binding.refresh_from_db()
    assert breaker.state(binding) == breaker.CLOSED


def test_a_closing_breaker_makes_the_syncs_it_postponed_due_now(account, binding, settings):
    postponed = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.PENDING, error=breaker.POSTPONED,
                          next_attempt_at=timezone.now() + timedelta(seconds=60))
    other = make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.PENDING, error="ERP answered 500",
                      next_attempt_at=timezone.now() + timedelta(seconds=60))
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=settings.BREAKER_THRESHOLD, breaker_open_until=timezone.now())

    breaker.record_success(binding)

    postponed.refresh_from_db()
    other.refresh_from_db()
    assert postponed.next_attempt_at <= db_now()
    assert other.next_attempt_at > db_now()  # on its own backoff: the breaker did not postpone it
    breaker.record_success(binding)  # already closed: nothing more is made due
