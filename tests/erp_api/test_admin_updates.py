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
