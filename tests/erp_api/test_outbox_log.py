"""Every failed or retried update to VTEX writes one log line: store, order, kind, outcome, next attempt."""
import logging

import pytest

from integration.models import UpdateSource
from integration.pipeline.outbox import send_due
from integration.pipeline.update_intake import accept_update
from tests.fake_vtex_updates import invoice_body

pytestmark = pytest.mark.django_db


def delivery_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "integration.deliveries"]


def accept_invoice(account):
    return accept_update(account, "1001-01", "invoice", invoice_body(), source=UpdateSource.ADAPTER, who="tests").update


def test_a_vtex_5xx_logs_a_retry_with_its_next_attempt(account, handled_order, oms, settings, caplog):
    settings.SYNC_BACKOFF_SECONDS = [60]
    oms.answer["invoice"] = [(500, {"error": {"message": "boom"}})]
    accept_invoice(account)
    with caplog.at_level(logging.INFO):
        send_due(budget=10)
    [line] = delivery_lines(caplog)
    assert line.startswith("delivery retrying: store=teststore order=1001-01 adapter=vtex action=invoice attempt=1 outcome=transient next_attempt=20")
    assert "500" in line


def test_a_vtex_4xx_logs_the_failure_once(account, handled_order, oms, caplog):
    oms.answer["invoice"] = [(400, {"error": {"code": "1", "message": "Invoice value does not match the items"}})]
    accept_invoice(account)
    with caplog.at_level(logging.INFO):
        send_due(budget=10)
    [line] = delivery_lines(caplog)
    assert "order=1001-01 adapter=vtex action=invoice attempt=1 outcome=failed next_attempt=none" in line
    assert "Invoice value does not match the items" in line
