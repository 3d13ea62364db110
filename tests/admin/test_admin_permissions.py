"""Who may see and do what: login everywhere, the Operators group, and store credentials kept out of sight."""
import re

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, reverse

from integration.models import Account, AdapterBinding, Order, OrderSync, StartHandlingState, SyncStatus
from tests.shared_fixtures import make_hub_order, make_sync

pytestmark = pytest.mark.django_db


def app_admin_paths(sample_id):
    """Every URL of this app's admin pages, with sample values for the path's parameters."""
    paths = []

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                paths.append(route)

    walk(admin.site.get_urls(), "/admin/")
    ours = [p for p in paths if p.startswith("/admin/integration/")]
    ours.append("/admin/integration/")
    return sorted({re.sub(r"<(?:\w+:)?\w+>", str(sample_id), p.replace("^", "").replace("$", "")) for p in ours})


def test_every_admin_url_of_the_app_sends_an_anonymous_user_to_login(client, account, binding):
    order = make_hub_order(account, "1-01")
    make_sync(order, binding)
    paths = app_admin_paths(order.pk)
    assert len(paths) >= 30
    for name in ("order/sync-order/", "failedsync/retry-matching/", f"order/{order.pk}/operate/", f"order/{order.pk}/change/"):
        assert f"/admin/integration/{name}" in paths
    for path in paths:
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 302, (method, path, response.status_code)
            assert response["Location"].startswith("/admin/login/?next="), path


def test_the_operators_group_views_everything_and_changes_only_syncs_orders_updates_and_tokens(operators_group):
    codenames = set(operators_group.permissions.values_list("content_type__app_label", "codename"))
    integration_models = ["account", "feedconfiguration", "routingrule", "routepause", "adapterbinding", "feedevent",
                          "order", "ordersync", "failedsync", "heldsync", "syncattempt"]
    for model in integration_models:
        assert ("integration", f"view_{model}") in codenames
    for model in ("task", "success", "failure", "schedule", "ormq"):
        assert ("django_q", f"view_{model}") in codenames
    changes = {c for c in codenames if not c[1].startswith("view_")}
    assert changes == {("integration", f"change_{m}") for m in ("ordersync", "failedsync", "heldsync", "order",
                                                                 "vtexupdate", "failedupdate", "erptoken")}


def test_an_operator_sees_the_lists_and_order_pages_and_runs_the_actions(operator_client, account, binding, enqueued):
    order = make_hub_order(account, "1-01", start_handling_state=StartHandlingState.FAILED)
    sync = make_sync(order, binding, SyncStatus.FAILED)
    for name in ("ordersync", "failedsync", "heldsync", "order", "feedevent", "account", "adapterbinding"):
        assert operator_client.get(reverse(f"admin:integration_{name}_changelist")).status_code == 200, name
    assert operator_client.get(reverse("admin:django_q_failure_changelist")).status_code == 200
    html = operator_client.get(reverse("admin:integration_order_change", args=[order.pk])).content.decode()
    assert 'value="retry_sync"' in html
    response = operator_client.post(reverse("admin:integration_failedsync_changelist"),
                                    {"action": "retry_now", ACTION_CHECKBOX_NAME: [sync.pk], "index": 0}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Retrying now: 1 sync in 1 store."]
    assert operator_client.get(reverse("admin:integration_order_sync_order")).status_code == 200


def test_an_operator_cannot_change_or_add_a_store(operator_client, account):
    url = reverse("admin:integration_account_change", args=[account.pk])
    response = operator_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="app_token"' not in html and 'name="_save"' not in html   # no token input, nothing to save
    assert account.app_token_ciphertext[:20] not in html and account.hook_secret_ciphertext[:20] not in html
    response = operator_client.post(url, {"name": "Renamed", "app_token": "stolen"})
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.name == "Test store" and account.app_token == "test-app-token-SECRET-123"
    assert operator_client.get(reverse("admin:integration_account_add")).status_code == 403


def test_an_operator_viewing_a_store_sees_no_token(operator_client, account):
    html = operator_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "test-app-token-SECRET-123" not in html
    assert account.hook_secret not in html


def test_an_operator_sees_no_adapter_settings(operator_client, admin_client, binding):
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    html = operator_client.get(url).content.decode()
    assert "erp.example.com" not in html and "erp-bearer-SECRET-987" not in html
    assert binding.secret_settings_ciphertext[:20] not in html
    assert operator_client.post(url, {"name": "x"}).status_code == 403
    assert operator_client.get(reverse("admin:integration_adapterbinding_add")).status_code == 403
    # Whoever may change the binding sees its (plain) settings; never the secret ones.
    admin_html = admin_client.get(url).content.decode()
    assert "erp.example.com" in admin_html and "erp-bearer-SECRET-987" not in admin_html


def test_view_only_users_can_look_but_not_act(client, django_user_model, account, binding, enqueued):
    viewer = django_user_model.objects.create_user("vic", password="vic-password-123", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_ordersync", "view_failedsync", "view_order"]))
    client.force_login(viewer)
    order = make_hub_order(account, "1-01", start_handling_state=StartHandlingState.FAILED)
    sync = make_sync(order, binding, SyncStatus.FAILED)
    changelist = reverse("admin:integration_failedsync_changelist")
    html = client.get(changelist).content.decode()
    assert "retry_now" not in html and "Retry all matching" not in html
    client.post(changelist, {"action": "retry_now", ACTION_CHECKBOX_NAME: [sync.pk], "index": 0})
    page = client.get(reverse("admin:integration_order_change", args=[order.pk])).content.decode()
    assert "1-01" in page and 'value="retry_sync"' not in page and "retry_start_handling" not in page
    operate = reverse("admin:integration_order_operate", args=[order.pk])
    assert client.post(operate, {"op": "retry_sync", "sync": sync.pk}).status_code == 403
    assert client.post(operate, {"op": "retry_start_handling"}).status_code == 403
    assert client.post(reverse("admin:integration_failedsync_retry_matching"), {"confirm": "yes"}).status_code == 403
    assert client.get(reverse("admin:integration_order_sync_order")).status_code == 403
    assert client.post(reverse("admin:integration_order_changelist"),
                       {"action": "retry_start_handling", ACTION_CHECKBOX_NAME: [order.pk], "index": 0}).status_code in (200, 302)
    assert OrderSync.objects.get(pk=sync.pk).status == SyncStatus.FAILED
    assert Order.objects.get(pk=order.pk).start_handling_state == StartHandlingState.FAILED
    assert enqueued == []


def test_nobody_adds_or_deletes_syncs_and_orders_in_the_admin(admin_client, account, binding):
    order = make_hub_order(account, "1-01")
    sync = make_sync(order, binding)
    for name, pk in (("ordersync", sync.pk), ("failedsync", sync.pk), ("order", order.pk)):
        assert admin_client.get(reverse(f"admin:integration_{name}_add")).status_code == 403
        assert admin_client.post(reverse(f"admin:integration_{name}_delete", args=[pk])).status_code == 403
    assert OrderSync.objects.count() == 1 and Order.objects.count() == 1
    assert Account.objects.count() == 1 and AdapterBinding.objects.count() == 1
