"""Two (three) workers sending the outbox at once never send one update twice, on either database."""
import threading
from collections import Counter

import pytest
from django.db import connection

from integration.models import Order, StartHandlingState, UpdateSource, UpdateStatus, VtexUpdate
from integration.pipeline.outbox import send_due
from integration.pipeline.update_intake import accept_update
from tests.fake_vtex_updates import TRACKING, invoice_body


@pytest.fixture
def oms(vtex_updates):
    """The way back's VTEX: FakeOms plus the invoice, tracking and cancel calls."""
    return vtex_updates


@pytest.mark.django_db(transaction=True)
def test_racing_senders_send_every_update_exactly_once(account, oms, settings):
    settings.DISPATCH_BATCH_SIZE = 7  # small batches: the senders interleave many claims
    for n in range(40):
        order_id = f"{n}-01"
        oms.add(order_id, "handling")
        Order.objects.create(account=account, order_id=order_id, vtex_status="handling", start_handling_state=StartHandlingState.DONE)
        accept_update(account, order_id, "invoice", invoice_body(f"NF-{n}"), source=UpdateSource.API)
        accept_update(account, order_id, "tracking", TRACKING, invoice_number=f"NF-{n}", source=UpdateSource.API)
    barrier = threading.Barrier(3)
    errors = []

    def sender():
        try:
            barrier.wait()
            send_due(budget=60)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    send_due(budget=30)  # a tracking held while another worker sent its invoice is released now
    calls = Counter((c[0], c[1]) for c in oms.calls)
    assert len(calls) == 80 and set(calls.values()) == {1}
    # Never a tracking before its invoice.
    for n in range(40):
        routes = [c[0] for c in oms.calls if c[1] == f"{n}-01"]
        assert routes == ["invoice", "tracking"]
    assert VtexUpdate.objects.exclude(status=UpdateStatus.SENT).count() == 0
    assert VtexUpdate.objects.exclude(claimed_by="").count() == 0
