"""The way back's admin actions and who may run them: an Operator retries, resolves and abandons
updates to VTEX, enters an invoice by hand and revokes an ERP token; a user who may only look
cannot do any of it, through the list actions or the order page's buttons and form."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from integration.models import ErpToken, UpdateSource, UpdateStatus, VtexUpdate
from integration.pipeline.update_intake import accept_update
from tests.fake_vtex_updates import invoice_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def oms(vtex_updates):
    return vtex_updates


def failed_update(account, number):
    update = accept_update(account, "1001-01", "invoice", invoice_body(number), source=UpdateSource.API, who="tests").update
    VtexUpdate.objects.filter(pk=update.pk).update(status=UpdateStatus.FAILED, last_error="VTEX said no")
    return update


def post_action(client, model, action, pks):
    return client.post(reverse(f"admin:integration_{model}_changelist"),
                       {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0}, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def status_of(update):
    return VtexUpdate.objects.values_list("status", flat=True).get(pk=update.pk)


def invoice_form(number):
    return {"type": "Output", "invoice_number": number, "issuance_date": "2026-12-02T10:00:00-03:00",
            "invoice_value": "990", "items": '[{"id": "SKU0", "price": 990, "quantity": 1}]'}


def test_an_operator_runs_every_update_action_enters_an_invoice_and_revokes_a_token(operator_client, operator, account,
                                                                                    binding, handled_order, enqueued):
    first, second, third, fourth = (failed_update(account, f"NF-{n}") for n in range(4))
    failed_page = operator_client.get(reverse("admin:integration_failedupdate_changelist")).content.decode()
    for action in ("retry_now", "mark_resolved", "abandon"):
        assert f'value="{action}"' in failed_page

    assert messages_of(post_action(operator_client, "failedupdate", "retry_now", [first.pk])) == ["Retrying now: 1 update in 1 store."]
    assert status_of(first) == UpdateStatus.QUEUED
    post_action(operator_client, "vtexupdate", "mark_resolved", [second.pk])
    assert VtexUpdate.objects.get(pk=second.pk).resolved_by == operator
    post_action(operator_client, "failedupdate", "abandon", [third.pk])
    assert status_of(third) == UpdateStatus.ABANDONED
    # The order page's buttons on one update.
    order_page = operator_client.get(reverse("admin:integration_order_change", args=[handled_order.pk])).content.decode()
    assert reverse("admin:integration_vtexupdate_operate", args=[fourth.pk]) in order_page
    assert reverse("admin:integration_vtexupdate_enter_invoice", args=[handled_order.pk]) in order_page
    assert operator_client.post(reverse("admin:integration_vtexupdate_operate", args=[fourth.pk]), {"op": "resolve"}).status_code == 302
    assert status_of(fourth) == UpdateStatus.RESOLVED

    # The invoice form for the day the ERP is down.
    form_url = reverse("admin:integration_vtexupdate_enter_invoice", args=[handled_order.pk])
    assert operator_client.get(form_url).status_code == 200
    assert operator_client.post(form_url, invoice_form("NF-OP")).status_code == 302
    entered = VtexUpdate.objects.get(invoice_number="NF-OP")
    assert (entered.source, entered.created_by) == (UpdateSource.OPERATOR, operator)

    # Tokens: revoke yes; issuing a credential stays with administrators.
    row, _ = ErpToken.issue(binding, name="old")
    assert 'value="revoke"' in operator_client.get(reverse("admin:integration_erptoken_changelist")).content.decode()
    assert messages_of(post_action(operator_client, "erptoken", "revoke", [row.pk])) == ["Revoked 1 token."]
    assert ErpToken.objects.get(pk=row.pk).revoked_at is not None
    assert operator_client.get(reverse("admin:integration_erptoken_add")).status_code == 403


def test_a_read_only_user_sees_the_updates_but_cannot_act_on_them(client, django_user_model, account, binding, handled_order):
    viewer = django_user_model.objects.create_user("vic", password="vic-password-123", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="integration", codename__in=["view_vtexupdate", "view_failedupdate", "view_order", "view_erptoken"]))
    client.force_login(viewer)
    update = failed_update(account, "NF-1")
    row, _ = ErpToken.issue(binding, name="current")

    page = client.get(reverse("admin:integration_failedupdate_changelist"))
    assert page.status_code == 200 and b"VTEX said no" in page.content
    html = page.content.decode()
    assert 'value="retry_now"' not in html and 'value="mark_resolved"' not in html and 'value="abandon"' not in html
    for model, action in (("failedupdate", "retry_now"), ("vtexupdate", "mark_resolved"), ("vtexupdate", "abandon")):
        post_action(client, model, action, [update.pk])
        assert status_of(update) == UpdateStatus.FAILED, action
    order_page = client.get(reverse("admin:integration_order_change", args=[handled_order.pk])).content.decode()
    assert "VTEX said no" in order_page
    assert reverse("admin:integration_vtexupdate_operate", args=[update.pk]) not in order_page
    assert reverse("admin:integration_vtexupdate_enter_invoice", args=[handled_order.pk]) not in order_page
    for op in ("retry", "resolve", "abandon"):
        assert client.post(reverse("admin:integration_vtexupdate_operate", args=[update.pk]), {"op": op}).status_code == 403
    assert status_of(update) == UpdateStatus.FAILED
    form_url = reverse("admin:integration_vtexupdate_enter_invoice", args=[handled_order.pk])
    assert client.get(form_url).status_code == 403
    assert client.post(form_url, invoice_form("NF-X")).status_code == 403
    assert not VtexUpdate.objects.filter(invoice_number="NF-X").exists()

    tokens = client.get(reverse("admin:integration_erptoken_changelist")).content.decode()
    assert row.hint in tokens and 'value="revoke"' not in tokens
    post_action(client, "erptoken", "revoke", [row.pk])
    assert ErpToken.objects.get(pk=row.pk).revoked_at is None
