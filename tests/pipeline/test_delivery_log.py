"""Every failed or retried delivery to an adapter writes one log line: store, order, adapter, outcome, next attempt."""
import logging

import pytest
import responses

from integration.models import OrderSync, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.failure_log import log_failed_delivery
from integration.redaction import register_secret
from tests.shared_fixtures import make_binding, make_hub_order, make_sync
from tests.fake_oms import FakeOms

pytestmark = pytest.mark.django_db
ERP = "https://erp.example.com/orders"


def delivery_lines(caplog):
    return [r for r in caplog.records if r.name == "integration.deliveries"]


@pytest.fixture
def pending_send(account, vtex, settings):
    settings.DISPATCH_CONCURRENCY = 1
    settings.SYNC_BACKOFF_SECONDS = [60]
    FakeOms(vtex).add("1-01")
    binding = make_binding(account)
    return make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.PENDING, next_attempt_at=None)


def test_a_500_from_the_erp_logs_one_line_with_the_next_attempt(pending_send, vtex, caplog):
    OrderSync.objects.filter(pk=pending_send.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    vtex.add(responses.POST, ERP, status=500, body="upstream down; token erp-bearer-SECRET-987")
    with caplog.at_level(logging.INFO):
        dispatch_due(budget=10)
    [record] = delivery_lines(caplog)
    line = record.getMessage()
    assert record.levelno == logging.WARNING and line.startswith("delivery retrying: ")
    assert "store=teststore order=1-01 adapter=" in line and f"webhook#{pending_send.binding_id}" in line
    assert "action=send attempt=1 outcome=transient next_attempt=20" in line and "500" in line
    assert "\n" not in line


def test_the_line_carries_no_secret_and_stays_one_line(caplog):
    register_secret("erp-bearer-SECRET-987")
    with caplog.at_level(logging.INFO):
        log_failed_delivery(store="s", order="1-01", adapter="webhook#1 ERP", outcome="permanent", attempt=1, next_attempt=None,
                            error='ERP said:\nAuthorization: Bearer abc-123-xyz-token\n{"api_key": "k-999-live"} erp-bearer-SECRET-987')
    [line] = delivery_lines(caplog)
    line = line.getMessage()
    assert "\n" not in line and "ERP said:" in line
    for secret in ("abc-123-xyz-token", "k-999-live", "erp-bearer-SECRET-987"):
        assert secret not in line


def test_a_422_from_the_erp_logs_a_permanent_failure_without_a_next_attempt(pending_send, vtex, caplog):
    OrderSync.objects.filter(pk=pending_send.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    vtex.add(responses.POST, ERP, status=422, json={"error": "SKU 123 unknown"})
    with caplog.at_level(logging.INFO):
        dispatch_due(budget=10)
    pending_send.refresh_from_db()
    assert pending_send.status == SyncStatus.FAILED
    [record] = delivery_lines(caplog)
    line = record.getMessage()
    assert record.levelno == logging.ERROR and line.startswith("delivery failed: ")
    assert "order=1-01" in line and "outcome=permanent next_attempt=none" in line and "422" in line


def test_the_last_attempt_logs_failed_after_retries(pending_send, vtex, caplog, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    OrderSync.objects.filter(pk=pending_send.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    vtex.add(responses.POST, ERP, status=503)
    with caplog.at_level(logging.INFO):
        dispatch_due(budget=10)
    [record] = delivery_lines(caplog)
    assert "outcome=failed next_attempt=none" in record.getMessage() and "gave up" not in record.getMessage()


def test_a_delivery_that_succeeds_logs_no_failure(pending_send, vtex, caplog):
    OrderSync.objects.filter(pk=pending_send.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    vtex.add(responses.POST, ERP, json={"id": "ERP-1"})
    with caplog.at_level(logging.INFO):
        dispatch_due(budget=10)
    assert delivery_lines(caplog) == []
