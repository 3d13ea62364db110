"""Intake works per batch: storing and routing a batch of feed items runs the same statements
whatever its size (a field routing reads but the stored rows were loaded without cost a query per
event, unnoticed, until a CPU profile showed it as 6 % of the hub's CPU)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integration.models import Order, OrderSync
from integration.pipeline import inbox
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


def _statements_to_take_in(account, first, size):
    incoming = [inbox.parse_feed_item(feed_item(f"{n}-01")) for n in range(first, first + size)]
    with CaptureQueriesContext(connection) as ctx:
        stored = inbox.take_in(account, incoming)
    assert stored.new == size
    return len(ctx.captured_queries)


def test_the_statements_of_a_batch_do_not_grow_with_its_size(account, bindings):
    two = _statements_to_take_in(account, 100, 2)
    ten = _statements_to_take_in(account, 200, 10)
    assert ten == two, (two, ten)
    assert OrderSync.objects.count() == 12 * len(bindings)


def test_routing_a_later_event_does_not_read_the_order_s_snapshot(account, bindings):
    # A known order's snapshot is VTEX's whole order JSON; routing reads none of it.
    inbox.take_in(account, [inbox.parse_feed_item(feed_item("300-01"))])
    Order.objects.filter(order_id="300-01").update(snapshot={"items": [{"name": "x" * 100}] * 50})
    later = inbox.parse_feed_item(feed_item("300-01", "canceled", change="2026-11-27T11:00:00.0000000Z"))
    with CaptureQueriesContext(connection) as ctx:
        stored = inbox.take_in(account, [later])
    assert stored.new == 1
    reads = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT") and "integration_order" in q["sql"]]
    assert reads and not [sql for sql in reads if "snapshot" in sql], reads
    assert Order.objects.get(order_id="300-01").canceled  # what routing does with the order still happens
