import threading
from collections import Counter

import pytest
from django.db import connection

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import Order, OrderSync, StartHandlingState, SyncStatus
from tests.fake_feed import feed_item


@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_never_deliver_a_sync_twice_nor_call_start_handling_twice(account, bindings, feed, oms, recorder, settings):
    settings.DISPATCH_BATCH_SIZE = 7  # small batches: the dispatchers interleave many claims
    for n in range(60):
        oms.add(f"{n}-01")
        feed.add(feed_item(f"{n}-01"))
    assert run_feed_cycle(account).ok
    barrier = threading.Barrier(3)
    errors = []

    def dispatcher(concurrency):
        try:
            barrier.wait()
            dispatch_due(budget=60, concurrency=concurrency)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher, args=(c,)) for c in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    deliveries = Counter((c[0], c[2]) for c in recorder.calls if c[1] == "send")
    assert len(deliveries) == 120 and set(deliveries.values()) == {1}
    assert len(oms.start_handling_calls) == 60 and set(oms.start_handling_calls.values()) == {1}
    assert OrderSync.objects.exclude(status=SyncStatus.SUCCEEDED).count() == 0
    assert Order.objects.exclude(start_handling_state=StartHandlingState.DONE).count() == 0
    assert Order.objects.exclude(claimed_by="").count() == 0  # every claim released
