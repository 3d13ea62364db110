"""Random and hostile order JSON from VTEX's get-order, through the real dispatch (fetch,
check, snapshot, parse, adapters, start-handling): every outcome is recorded and bounded."""
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import event, given, settings, strategies as st

from integration.models import Order, OrderSync, SyncAttempt, SyncStatus
from integration.pipeline import inbox
from integration.pipeline.dispatch import dispatch_due
from tests.fake_feed import BASE, feed_item
from tests.fake_oms import make_order
from tests.fuzz.strategies import hostile_values, json_values, nested, unique

pytestmark = pytest.mark.django_db
KEYS = ["status", "orderId", "items", "totals", "value", "clientProfileData", "shippingData", "paymentData", "extra"]


@st.composite
def answers(draw, order_id):
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "value", "deep", "text"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "deep":
        depth = draw(st.sampled_from([70, 500, 3000]))
        return '{"orderId": "%s", "status": "ready-for-handling", "x": %s}' % (order_id, "[" * depth + "]" * depth)
    if kind == "text":
        return draw(st.text(max_size=50))
    order = make_order(order_id)
    for _ in range(draw(st.integers(1, 3))):
        order[draw(st.sampled_from(KEYS))] = draw(hostile_values)
    return json.dumps(order)


@pytest.fixture
def start_handling(vtex):
    vtex.add("POST", re.compile(re.escape(BASE) + r"/api/oms/pvt/orders/[^/]+/start-handling$"), status=204)


@settings(settings.get_profile("hub-fuzz"))
@given(st.data())
def test_every_order_answer_ends_recorded_and_bounded(account, bindings, recorder, vtex, start_handling, data):
    order_id = f"{unique()}-01"
    url = f"{BASE}/api/oms/pvt/orders/{order_id}"
    vtex.get(url, body=data.draw(answers(order_id)), content_type="application/json")
    inbox.store_events(account, [inbox.parse_feed_item(feed_item(order_id))])

    dispatch_due(budget=2)  # before, a poison order was claimed again and again for the whole budget

    assert sum(1 for c in vtex.calls if c.request.url == url) == 1
    now = timezone.now()
    syncs = OrderSync.objects.filter(order__order_id=order_id)
    assert syncs.count() == 2
    for sync in syncs:
        if sync.status == SyncStatus.PENDING:  # a retry: on the backoff schedule, with its attempt recorded
            assert sync.next_attempt_at > now + timedelta(seconds=5) and sync.last_error.strip()
            assert SyncAttempt.objects.filter(sync=sync).exclude(error="").exists()
        else:
            assert sync.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED, SyncStatus.HELD, SyncStatus.SKIPPED)
        event(f"sync {sync.status}")
    order = Order.objects.get(order_id=order_id)
    if order.snapshot is not None:
        json.dumps(order.snapshot)  # what was stored reads back as JSON
