"""The hub against the sandbox over real HTTP, with VTEX misbehaving, into a webhook ERP."""
import time
from collections import Counter

import pytest

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import AdapterBinding, FeedEvent, Order, OrderSync, StartHandlingState, SyncStatus
from tests.shared_fixtures import APP_KEY


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_ready_order_reaches_the_erp_once_and_start_handling_once(sandbox, sandbox_store, erp, settings):
    settings.SYNC_BACKOFF_SECONDS = [1]
    settings.SYNC_BACKOFF_JITTER = 0
    settings.DISPATCH_CONCURRENCY = 4
    settings.VTEX_DEFAULT_RETRY_AFTER = 1  # a 503 carries no Retry-After: pause one second, not sixty
    binding = AdapterBinding(account=sandbox_store, adapter_key="webhook", name="ERP")
    binding.apply_settings({"url": erp.url + "/orders", "signing_secret": "e2e-signing-secret-xyz"})
    binding.save()
    sandbox.faults.update({
        "duplicate_rate": 0.3, "twin_rate": 0.2, "reorder": True, "partial_rate": 0.3,
        "rate_limit": [{"route": "get_order", "count": 2, "retry_after": 1}, {"route": "feed_retrieve", "count": 1, "retry_after": 1}],
        "server_error": [{"route": "start_handling", "count": 2, "status": 503}, {"route": "get_order", "count": 3, "status": 500},
                         {"route": "feed_commit", "count": 1, "status": 502}],
    })
    order_ids = sandbox.create_orders(APP_KEY, 25)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run_feed_cycle(sandbox_store, budget=10)
        dispatch_due(budget=10)
        stats = sandbox.stats()
        done = all(stats["statuses"][oid] == "handling" for oid in order_ids)
        if done and stats["feed_depth"] == 0 and not OrderSync.objects.filter(status=SyncStatus.PENDING).exists():
            break
        time.sleep(0.5)

    stats = sandbox.stats()
    assert stats["feed_depth"] == 0, "every event committed"
    assert {stats["statuses"][oid] for oid in order_ids} == {"handling"}
    deliveries = Counter(r["headers"].get("Idempotency-Key") for r in erp.received)
    sends = [k for k in deliveries if k and ":send" in k]
    assert len(sends) == 25
    # At most once in effect: a delivery is repeated only with the same key, never a second key.
    assert {k.split(":")[2] for k in sends} == set(order_ids)
    assert stats["start_handling_ok"] == {oid: 1 for oid in order_ids}
    assert Order.objects.filter(start_handling_state=StartHandlingState.DONE).count() == 25
    assert OrderSync.objects.filter(status=SyncStatus.SUCCEEDED).count() == 25
    assert FeedEvent.objects.filter(committed_at__isnull=True, handle__gt="").count() == 0
    assert stats["calls"].get("feed_retrieve", 0) >= 1 and stats["committed"] >= 25
