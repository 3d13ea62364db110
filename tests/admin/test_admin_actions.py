"""Each admin action, posted to its changelist as the admin's own form does (django-q2 tests its admin this way)."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from integration.models import Order, OrderSync, StartHandlingState, SyncStatus
from tests.shared_fixtures import make_binding, make_hub_order, make_sync
from tests.fake_oms import FakeOms

pytestmark = pytest.mark.django_db


def run_action(client, model, action, pks, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0, **extra}
    response = client.post(reverse(f"admin:integration_{model}_changelist"), data, follow=True)
    assert response.status_code == 200
    return response, [str(m) for m in response.context["messages"]]


@pytest.fixture
def failed_syncs(account, binding):
    return [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED, attempts=8) for n in range(3)]


def test_retry_now_from_the_failed_syncs_page(admin_client, failed_syncs, enqueued, account):
    response, msgs = run_action(admin_client, "failedsync", "retry_now", [s.pk for s in failed_syncs[:2]])
    assert msgs == ["Retrying now: 2 syncs in 1 store."]
    assert OrderSync.objects.filter(status=SyncStatus.PENDING, attempts=0).count() == 2
    assert OrderSync.objects.get(pk=failed_syncs[2].pk).status == SyncStatus.FAILED
    assert enqueued == [account.pk]
    # They left the failed list.
    assert response.context["cl"].result_count == 1


def test_retry_now_from_the_all_syncs_and_held_pages(admin_client, account, binding, enqueued):
    held = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.HELD)
    done = make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.SUCCEEDED)
    _, msgs = run_action(admin_client, "heldsync", "retry_now", [held.pk])
    assert msgs == ["Retrying now: 1 sync in 1 store."]
    _, msgs = run_action(admin_client, "ordersync", "retry_now", [held.pk, done.pk])
    assert msgs == ["Retrying now: 1 sync in 1 store. 1 sync left alone (not failed, held or pending)."]
    assert OrderSync.objects.get(pk=done.pk).status == SyncStatus.SUCCEEDED


def test_mark_resolved_delivered_by_hand_and_abandon(admin_client, admin_user, failed_syncs, enqueued):
    first, second, _ = failed_syncs
    _, msgs = run_action(admin_client, "failedsync", "resolve_delivered_by_hand", [first.pk])
    assert msgs == ["Resolved as delivered by hand: 1 sync in 1 store. Start-handling is now due for 1 order."]
    _, msgs = run_action(admin_client, "failedsync", "resolve_abandon", [second.pk])
    assert msgs == ["Resolved as abandoned: 1 sync in 1 store. Start-handling will not be called for 1 order "
                    "(a gating sync abandoned); “Start handling anyway” on the order calls it regardless."]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.resolved_by) == (SyncStatus.DELIVERED_BY_HAND, admin_user)
    assert (second.status, second.resolved_by) == (SyncStatus.ABANDONED, admin_user)
    assert Order.objects.get(pk=first.order_id).start_handling_due_at is not None
    assert Order.objects.get(pk=second.order_id).start_handling_due_at is None


def test_retry_start_handling_from_the_orders_page(admin_client, account, binding, enqueued):
    order = make_hub_order(account, "1-01", start_handling_state=StartHandlingState.FAILED, start_handling_attempts=8)
    make_sync(order, binding, SyncStatus.SUCCEEDED)
    done = make_hub_order(account, "2-01", start_handling_state=StartHandlingState.DONE)
    _, msgs = run_action(admin_client, "order", "retry_start_handling", [order.pk, done.pk])
    assert msgs == ["Start-handling due now: 1 order in 1 store. 1 order left alone (already done, claimed or not called)."]
    order.refresh_from_db()
    assert (order.start_handling_state, order.start_handling_attempts) == (StartHandlingState.PENDING, 0)
    assert order.start_handling_due_at is not None


def test_select_all_across_pages_retries_every_matching_sync(admin_client, account, binding, enqueued):
    syncs = [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED) for n in range(5)]
    _, msgs = run_action(admin_client, "failedsync", "retry_now", [syncs[0].pk], select_across=1)
    assert msgs == ["Retrying now: 5 syncs in 1 store."]


def test_actions_need_a_post_with_a_csrf_token(admin_user, failed_syncs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("admin:integration_failedsync_changelist"),
                           {"action": "retry_now", ACTION_CHECKBOX_NAME: [failed_syncs[0].pk], "index": 0})
    assert response.status_code == 403
    order = failed_syncs[0].order
    response = client.post(reverse("admin:integration_order_operate", args=[order.pk]), {"op": "retry_sync", "sync": failed_syncs[0].pk})
    assert response.status_code == 403
    response = client.post(reverse("admin:integration_failedsync_retry_matching"), {"confirm": "yes"})
    assert response.status_code == 403
    assert OrderSync.objects.filter(status=SyncStatus.FAILED).count() == 3
    # A GET never changes anything.
    assert client.get(reverse("admin:integration_order_operate", args=[order.pk])).status_code == 405


def test_retry_all_matching_confirms_the_count_then_retries_only_what_the_filter_matches(admin_client, make_account, account, binding, enqueued, settings):
    settings.RETRY_ALL_PER_MINUTE = 60
    other = make_account(name="Other", account_name="other", app_key="vtexappkey-other-XYZ")
    other_binding = make_binding(other)
    mine = [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED) for n in range(4)]
    theirs = [make_sync(make_hub_order(other, f"{n}-02"), other_binding, SyncStatus.FAILED) for n in range(3)]
    changelist = reverse("admin:integration_failedsync_changelist")

    page = admin_client.get(changelist, {"store": account.pk}).content.decode()
    url = reverse("admin:integration_failedsync_retry_matching")
    assert f'action="{url}?store={account.pk}"' in page and "Retry all matching this filter" in page

    confirm = admin_client.post(f"{url}?store={account.pk}")
    assert confirm.status_code == 200
    assert confirm.context["count"] == 4
    assert "<strong>4</strong> syncs" in confirm.content.decode()
    assert OrderSync.objects.filter(status=SyncStatus.FAILED).count() == 7     # nothing changed yet

    done = admin_client.post(f"{url}?store={account.pk}&p=2", {"confirm": "yes"}, follow=True)
    assert [str(m) for m in done.context["messages"]] == [
        "Retrying all matching: 4 syncs in 1 store. Released at 60 a minute: the last one is due in about 3 seconds."]
    assert done.redirect_chain[-1][0] == f"{changelist}?store={account.pk}&p=2"
    assert set(OrderSync.objects.filter(pk__in=[s.pk for s in mine]).values_list("status", flat=True)) == {SyncStatus.PENDING}
    assert set(OrderSync.objects.filter(pk__in=[s.pk for s in theirs]).values_list("status", flat=True)) == {SyncStatus.FAILED}
    assert enqueued == [account.pk]


def test_retry_all_matching_follows_the_search_and_every_filter(admin_client, account, binding, enqueued):
    other_binding = make_binding(account, name="WMS")
    a = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.FAILED)
    make_sync(a.order, other_binding, SyncStatus.FAILED)
    make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.FAILED)
    url = reverse("admin:integration_ordersync_retry_matching")
    confirm = admin_client.get(url, {"q": "1-01", "binding": binding.pk, "status__exact": "failed", "action": "send"})
    assert confirm.context["count"] == 1
    admin_client.post(f"{url}?q=1-01&binding={binding.pk}", {"confirm": "yes"})
    assert list(OrderSync.objects.filter(status=SyncStatus.PENDING).values_list("pk", flat=True)) == [a.pk]


def test_retry_all_matching_with_an_invalid_filter_changes_nothing(admin_client, failed_syncs, enqueued):
    url = reverse("admin:integration_failedsync_retry_matching")
    response = admin_client.post(f"{url}?created_at__gte=not-a-date", {"confirm": "yes"}, follow=True)
    assert "not valid" in [str(m) for m in response.context["messages"]][0]
    assert OrderSync.objects.filter(status=SyncStatus.FAILED).count() == 3


def test_the_order_page_buttons(admin_client, admin_user, account, binding, enqueued):
    order = make_hub_order(account, "1-01", start_handling_state=StartHandlingState.CONFLICT)
    first = make_sync(order, binding, SyncStatus.FAILED)
    second = make_sync(order, make_binding(account, name="WMS"), SyncStatus.HELD)
    page_url = reverse("admin:integration_order_change", args=[order.pk])
    html = admin_client.get(page_url).content.decode()
    assert html.count('value="retry_sync"') == 2 and 'value="retry_start_handling"' in html
    operate = reverse("admin:integration_order_operate", args=[order.pk])

    response = admin_client.post(operate, {"op": "retry_sync", "sync": first.pk})
    assert response["Location"] == f"{page_url}#sync-{first.pk}"
    assert OrderSync.objects.get(pk=first.pk).status == SyncStatus.PENDING
    admin_client.post(operate, {"op": "resolve_by_hand", "sync": second.pk})
    assert OrderSync.objects.get(pk=second.pk).status == SyncStatus.DELIVERED_BY_HAND
    admin_client.post(operate, {"op": "abandon_sync", "sync": first.pk})
    assert OrderSync.objects.get(pk=first.pk).status == SyncStatus.ABANDONED
    response = admin_client.post(operate, {"op": "retry_start_handling"}, follow=True)
    assert "Start-handling due now: 0 orders" in str(list(response.context["messages"])[-1])  # abandoned: not delivered
    # A sync of another order cannot be reached through this order's page.
    stranger = make_sync(make_hub_order(account, "9-01"), binding, SyncStatus.FAILED)
    response = admin_client.post(operate, {"op": "retry_sync", "sync": stranger.pk}, follow=True)
    assert "No such sync" in str(list(response.context["messages"])[-1])
    assert OrderSync.objects.get(pk=stranger.pk).status == SyncStatus.FAILED


def test_sync_this_order_now_shows_the_result(admin_client, account, binding, vtex, enqueued):
    FakeOms(vtex).add("555-01")
    url = reverse("admin:integration_order_sync_order")
    assert 'name="order_id"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"account": account.pk, "order_id": "555-01"})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="sync-order-result"' in html
    assert "stored as a new event and routed" in html
    order = Order.objects.get(order_id="555-01")
    assert reverse("admin:integration_order_change", args=[order.pk]) in html
    assert OrderSync.objects.filter(order=order, status=SyncStatus.PENDING).count() == 1
    assert enqueued == [account.pk]


def test_sync_this_order_now_shows_the_vtex_error(admin_client, account, vtex, enqueued):
    FakeOms(vtex)
    response = admin_client.post(reverse("admin:integration_order_sync_order"), {"account": account.pk, "order_id": "404-01"})
    html = response.content.decode()
    assert 'id="sync-order-error"' in html and "VTEX answered" in html
    assert not Order.objects.exists() and enqueued == []
    response = admin_client.post(reverse("admin:integration_order_sync_order"), {"account": account.pk, "order_id": "a b"})
    assert "without spaces" in response.content.decode()
