"""Intake works per batch: storing and routing a batch of feed items runs the same statements
whatever its size (a field routing reads but the stored rows were loaded without cost a query per
event, unnoticed, until a CPU profile showed it as 6 % of the hub's CPU)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integration.models import OrderSync
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
