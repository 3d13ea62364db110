""""Retry now" on an update to VTEX makes it due now and enqueues the outbox for its store."""
import pytest
from django.db.models.functions import Now

from integration.models import UpdateSource, UpdateStatus, VtexUpdate
from integration.operations.updates import retry_updates
from integration.pipeline.update_intake import accept_update
from tests.fake_vtex_updates import invoice_body

pytestmark = pytest.mark.django_db


def test_retry_now_makes_the_update_due_and_enqueues_the_outbox(account, handled_order, monkeypatch):
    update = accept_update(account, "1001-01", "invoice", invoice_body(), source=UpdateSource.API, who="tests").update
    VtexUpdate.objects.filter(pk=update.pk).update(status=UpdateStatus.FAILED, attempts=8, next_attempt_at=None)
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue", lambda func, *args, **kw: calls.append((func, args)))

    outcome = retry_updates(VtexUpdate.objects.filter(pk=update.pk))

    assert outcome.changed == 1
    assert calls == [("integration.tasks.send_updates", (account.pk,))]
    row = VtexUpdate.objects.annotate(now=Now()).get(pk=update.pk)
    assert row.status == UpdateStatus.QUEUED and row.attempts == 0 and row.next_attempt_at <= row.now

