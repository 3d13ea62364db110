"""Sync one order: an order brought in by its id."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_sync_order_brings_an_order_in_by_id(account, bindings, oms, recorder):
    from io import StringIO

    oms.add("777-01")
    out = StringIO()
    call_command("sync_order", "teststore", "777-01", stdout=out)
    assert "stored and routed" in out.getvalue()
    assert recorder.count() == 2 and oms.start_handling_calls == {"777-01": 1}
    # VTEX now says 'handling': a new change, stored, routed to nothing.
    call_command("sync_order", "teststore", "777-01", stdout=StringIO())
    out = StringIO()
    call_command("sync_order", "teststore", "777-01", stdout=out)
    assert "already known" in out.getvalue()
    assert recorder.count() == 2 and oms.start_handling_calls == {"777-01": 1}
