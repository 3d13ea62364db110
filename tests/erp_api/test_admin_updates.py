"""The admin of updates to VTEX: list filters, the Failed updates page, actions posted to the
changelist, the order page timeline and buttons, the operator's invoice form, tokens, store health."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from integration.alerts import evaluate_failed_updates
from integration.models import Alert, AlertKind, AttemptOutcome, ErpToken, UpdateAttempt, UpdateSource, UpdateStatus, VtexUpdate
from integration.models.updates import hash_token
from integration.pipeline.update_intake import accept_update
from tests.fake_vtex_updates import invoice_body

pytestmark = pytest.mark.django_db


def make_update(account, status, number="NF-1"):
    update = accept_update(account, "1001-01", "invoice", invoice_body(number), source=UpdateSource.API, who="tests").update
    VtexUpdate.objects.filter(pk=update.pk).update(status=status, last_error="VTEX said no" if status == "failed" else "")
    return update


def run_action(client, model, action, pks):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0}
    response = client.post(reverse(f"admin:integration_{model}_changelist"), data, follow=True)
    assert response.status_code == 200
    return response, [str(m) for m in response.context["messages"]]


def test_failed_page_and_actions(admin_client, admin_user, account, handled_order):
    failed = [make_update(account, UpdateStatus.FAILED, f"NF-{n}") for n in range(3)]
    sent = make_update(account, UpdateStatus.SENT, "NF-9")
    page = admin_client.get(reverse("admin:integration_failedupdate_changelist"))
    assert page.status_code == 200 and page.context["cl"].result_count == 3 and b"VTEX said no" in page.content
    _, msgs = run_action(admin_client, "vtexupdate", "retry_now", [failed[0].pk, sent.pk])
    assert msgs == ["Retrying now: 1 update in 1 store. 1 update left alone (sent, being sent or already resolved)."]
    assert VtexUpdate.objects.get(pk=failed[0].pk).status == UpdateStatus.QUEUED
    _, msgs = run_action(admin_client, "failedupdate", "mark_resolved", [failed[1].pk])
    resolved = VtexUpdate.objects.get(pk=failed[1].pk)
    assert resolved.status == UpdateStatus.RESOLVED and resolved.resolved_by == admin_user
    run_action(admin_client, "vtexupdate", "abandon", [failed[2].pk])
    assert VtexUpdate.objects.get(pk=failed[2].pk).status == UpdateStatus.ABANDONED
    assert VtexUpdate.objects.get(pk=sent.pk).status == UpdateStatus.SENT


def test_list_filters(admin_client, account, handled_order):
    make_update(account, UpdateStatus.FAILED)
    url = reverse("admin:integration_vtexupdate_changelist")
    for query in (f"?account__id__exact={account.pk}", "?kind__exact=invoice", "?status__exact=failed", "?q=1001-01"):
        response = admin_client.get(url + query)
        assert response.status_code == 200 and response.context["cl"].result_count == 1, query
    assert admin_client.get(url + "?kind__exact=cancel").context["cl"].result_count == 0


def test_order_page_shows_updates_with_attempts_and_its_buttons_work(admin_client, account, handled_order):
    update = make_update(account, UpdateStatus.FAILED)
    UpdateAttempt.objects.create(update=update, number=1, outcome=AttemptOutcome.PERMANENT, http_status=400,
                                 error="VTEX says: Invoice value does not match", request_excerpt='{"invoiceNumber": "NF-1"}')
    page = admin_client.get(reverse("admin:integration_order_change", args=[handled_order.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="update-{update.pk}"' in html and "Invoice value does not match" in html and "(400)" in html
    response = admin_client.post(reverse("admin:integration_vtexupdate_operate", args=[update.pk]), {"op": "retry"})
    assert response.status_code == 302
    assert VtexUpdate.objects.get(pk=update.pk).status == UpdateStatus.QUEUED


def test_operator_enters_an_invoice_with_the_same_validation(admin_client, account, handled_order):
    url = reverse("admin:integration_vtexupdate_enter_invoice", args=[handled_order.pk])
    assert admin_client.get(url).status_code == 200
    form = {"type": "Output", "invoice_number": "NF-77", "issuance_date": "not a date", "invoice_value": "5970",
            "items": '[{"id": "SKU0", "price": 990, "quantity": 1}]'}
    bad = admin_client.post(url, form)
    assert bad.status_code == 200 and "issuanceDate" in bad.content.decode() and not VtexUpdate.objects.exists()
    form["issuance_date"] = "2026-12-02T10:00:00-03:00"
    good = admin_client.post(url, form)
    assert good.status_code == 302
    update = VtexUpdate.objects.get()
    assert update.source == UpdateSource.OPERATOR and update.body["invoiceNumber"] == "NF-77" and update.created_by.username == "admin"


def test_tokens_issued_once_listed_on_the_binding_and_revoked(admin_client, binding):
    response = admin_client.post(reverse("admin:integration_erptoken_add"), {"binding": binding.pk, "name": "SAP"}, follow=True)
    assert response.status_code == 200
    message = [str(m) for m in response.context["messages"]][0]
    token = message.split("<code id=\"new-erp-token\">")[1].split("</code>")[0]
    row = ErpToken.objects.get()
    assert row.token_hash == hash_token(token) and row.name == "SAP"
    page = admin_client.get(reverse("admin:integration_adapterbinding_change", args=[binding.pk])).content.decode()
    assert row.hint in page and token not in page
    run_action(admin_client, "erptoken", "revoke", [row.pk])
    assert ErpToken.objects.get().revoked_at is not None


def test_store_health_counts_and_alerts_on_failed_updates(admin_client, account, handled_order):
    make_update(account, UpdateStatus.FAILED)
    make_update(account, UpdateStatus.HELD, "NF-2")
    page = admin_client.get(reverse("admin:integration_account_changelist")).content.decode()
    assert 'class="updates-held" style="color:#9a6700">1<' in page and 'class="updates-failed" style="color:#b00020">1<' in page
    evaluate_failed_updates()
    alert = Alert.objects.get(kind=AlertKind.UPDATES_FAILED, resolved_at__isnull=True)
    assert "1 update to VTEX" in alert.message
    VtexUpdate.objects.update(status=UpdateStatus.RESOLVED)
    evaluate_failed_updates()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None


def test_store_health_counts_refused_cancellations_and_alerts_until_decided(admin_client, account, handled_order):
    from integration.alerts import evaluate_cancellation_refusals
    from integration.pipeline.update_intake import record_cancellation_refusal

    record_cancellation_refusal(account, "1001-01", {"reason": "already picked"}, who="binding ERP (#1)")
    stores = admin_client.get(reverse("admin:integration_account_changelist")).content.decode()
    assert 'class="cancellations-refused" style="color:#b00020">1<' in stores
    store_page = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "1 cancellation request refused by the ERP" in store_page
    dashboard = admin_client.get(reverse("admin:integration_dashboard")).content.decode()
    assert "1 cancellation refusal</a> waiting for a decision" in dashboard
    # The linked order list shows exactly the orders that wait for a decision.
    listed = admin_client.get(reverse("admin:integration_order_changelist") + f"?account__id__exact={account.pk}&refusal=open")
    assert [o.order_id for o in listed.context["cl"].result_list] == ["1001-01"]
    metrics = admin_client.get("/metrics").content.decode()
    assert 'vtexhub_cancellation_refusals{store="teststore"} 1' in metrics

    evaluate_cancellation_refusals()
    alert = Alert.objects.get(kind=AlertKind.CANCELLATION_REFUSED, resolved_at__isnull=True)
    assert alert.subject == "teststore" and "refused 1 cancellation request" in alert.message
    evaluate_cancellation_refusals()  # one episode, announced once
    assert Alert.objects.filter(kind=AlertKind.CANCELLATION_REFUSED).count() == 1
    # The ERP goes on by invoicing (VTEX's way on): nothing waits any more, the alert recovers.
    handled_order.__class__.objects.filter(pk=handled_order.pk).update(vtex_status="invoiced")
    evaluate_cancellation_refusals()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    stores = admin_client.get(reverse("admin:integration_account_changelist")).content.decode()
    assert 'class="cancellations-refused" style="color:inherit">0<' in stores
    assert admin_client.get(reverse("admin:integration_order_changelist") + "?refusal=any").context["cl"].result_count == 1


def test_an_update_held_too_long_opens_an_alert_and_the_health_pages_count_it(admin_client, account, handled_order, settings):
    from datetime import timedelta

    from django.utils import timezone

    from integration.alerts import evaluate_held_updates

    settings.ALERT_PENDING_AGE_SECONDS = 600
    held = make_update(account, UpdateStatus.HELD)
    make_update(account, UpdateStatus.FAILED, "NF-2")
    evaluate_held_updates()
    assert not Alert.objects.filter(kind=AlertKind.UPDATES_HELD).exists()  # held a moment: the normal wait
    VtexUpdate.objects.filter(pk=held.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    evaluate_held_updates()
    alert = Alert.objects.get(kind=AlertKind.UPDATES_HELD, resolved_at__isnull=True)
    assert "held for 61 minutes" in alert.message
    store_page = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "1 held</a>" in store_page and "1 failed</a>" in store_page
    dashboard = admin_client.get(reverse("admin:integration_dashboard")).content.decode()
    assert "1 held</a>" in dashboard and "1 failed</a>" in dashboard
    metrics = admin_client.get("/metrics").content.decode()
    assert 'vtexhub_updates{status="held",store="teststore"} 1' in metrics
    assert 'vtexhub_updates{status="failed",store="teststore"} 1' in metrics
    VtexUpdate.objects.filter(pk=held.pk).update(status=UpdateStatus.SENT)
    evaluate_held_updates()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
