"""The store admin: the health columns of the list, adding and editing a store, and each action.

VTEX is mocked over HTTP (`responses`); each action is posted to the changelist as the admin's
own form does, and its service function in `integration.operations.stores` is tested directly too.
"""
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integration.operations import feed_configuration
from integration.operations import results
from integration.operations import stores as store_ops
from integration.pipeline.dispatch import due_syncs
from integration.models import Account, Alert, AlertKind, FeedEvent, OrderSync, RoutingRule, SyncStatus
from tests.shared_fixtures import make_binding, make_hub_order, make_sync
from tests.fake_feed import BASE

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:integration_account_changelist"
FEED_CONFIG = BASE + "/api/orders/feed/config"


def run_action(client, action, pks):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0}
    response = client.post(reverse(CHANGELIST), data, follow=True)
    assert response.status_code == 200
    return response, [(m.level_tag, str(m)) for m in response.context["messages"]]


def vtex_feed_config(quantity=3, age=120.5, statuses=("ready-for-handling", "canceled"), retention=345600):
    return {"filter": {"type": "FromWorkflow", "status": list(statuses)},
            "queue": {"visibilityTimeoutInSeconds": 250, "messageRetentionPeriodInSeconds": retention},
            "quantity": quantity, "approximateAgeOfOldestMessageInSeconds": age}


def event(account, order_id, state="ready-for-handling", **kw):
    return FeedEvent.objects.create(account=account, change_key=f"{account.pk}|{order_id}|{state}", order_id=order_id,
                                    state=state, **kw)


# --- the list ----------------------------------------------------------------------------------------
def test_the_store_list_shows_each_stores_health(admin_client, account, make_account, binding):
    quiet = make_account(name="Quiet store", account_name="quiet", app_key="vtexappkey-quiet-XYZ")
    for n in range(3):
        event(account, f"{n}-01")
    old = event(account, "9-01")
    FeedEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))
    pending = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.PENDING)
    OrderSync.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=90))
    make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.PENDING)
    make_sync(make_hub_order(account, "3-01"), binding, SyncStatus.HELD)
    for n in range(4, 6):
        make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED)
    make_sync(make_hub_order(account, "7-01"), binding, SyncStatus.SUCCEEDED)
    Account.objects.filter(pk=account.pk).update(
        feed_backlog_quantity=42, feed_backlog_age=3 * 86400, feed_backlog_checked_at=timezone.now(),
        last_cycle_at=timezone.now(), last_cycle_ok=False, last_cycle_error="VTEX answered 401: check the app key")
    Alert.objects.create(kind=AlertKind.CYCLE_FAILING, subject="teststore", account=account, message="failing")
    Alert.objects.create(kind=AlertKind.HOOK_SILENT, subject="teststore", account=account, message="old",
                         resolved_at=timezone.now())

    response = admin_client.get(reverse(CHANGELIST))
    rows = {obj.pk: obj for obj in response.context["cl"].result_list}
    store, other = rows[account.pk], rows[quiet.pk]
    assert (store.events_24h, store.pending_syncs, store.held_syncs, store.failed_syncs, store.open_alerts) == (3, 2, 1, 2, 1)
    assert (other.events_24h, other.pending_syncs, other.held_syncs, other.failed_syncs, other.open_alerts) == (0, 0, 0, 0, 0)
    assert other.oldest_pending_at is None and store.feed_retention == 345600
    html = response.content.decode()
    assert "error: VTEX answered 401" in html
    assert "42 waiting, oldest 3.0 days" in html and "backlog-warning" in html   # 3 days > 50% of 4 days
    assert "90 min" in html                                                       # the oldest pending sync
    assert f'?state=open&amp;account__id__exact={account.pk}' in html
    assert f"?store={account.pk}&amp;status__exact=pending" in html
    assert "not checked" in html   # the quiet store's backlog


def test_backlog_warning_threshold():
    assert store_ops.backlog_warning(None, 345600) == ""
    assert store_ops.backlog_warning(0.5 * 345600, 345600) == ""
    assert "past it VTEX drops the message" in store_ops.backlog_warning(0.5 * 345600 + 1, 345600)


def test_the_store_list_is_one_query_however_many_stores(admin_client, make_account):
    def page_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(reverse(CHANGELIST)).status_code == 200
        return len(ctx.captured_queries)

    first = make_account(name="Store 0", account_name="s0", app_key="key-0")
    binding = make_binding(first)
    make_sync(make_hub_order(first, "1-01"), binding, SyncStatus.FAILED)
    few = page_queries()
    for n in range(1, 8):
        store = make_account(name=f"Store {n}", account_name=f"s{n}", app_key=f"key-{n}")
        b = make_binding(store)
        for k in range(3):
            make_sync(make_hub_order(store, f"{n}{k}-01"), b, [SyncStatus.PENDING, SyncStatus.HELD, SyncStatus.FAILED][k])
            event(store, f"{n}{k}-01")
    assert page_queries() == few


# --- add and edit ---------------------------------------------------------------------------------------
def store_form(**overrides):
    data = {
        "name": "New store", "account_name": "newstore", "environment": "vtexcommercestable",
        "app_key": "vtexappkey-newstore-ABC", "app_token": "new-token-SECRET-1", "api_base_url": "",
        "active": "on", "intake_mode": "feed", "call_start_handling": "on",
        "feed_config-TOTAL_FORMS": "0", "feed_config-INITIAL_FORMS": "0",
        "rules-TOTAL_FORMS": "0", "rules-INITIAL_FORMS": "0",
        "bindings-TOTAL_FORMS": "0", "bindings-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def change_form_data(client, account):
    """The store's change form as the browser would post it back unchanged."""
    response = client.get(reverse("admin:integration_account_change", args=[account.pk]))
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    data.pop("app_token", None)
    for formset in response.context["inline_admin_formsets"]:
        fs = formset.formset
        data[f"{fs.prefix}-TOTAL_FORMS"] = str(len(fs.forms))
        data[f"{fs.prefix}-INITIAL_FORMS"] = str(fs.initial_form_count())
        for f in fs.forms:
            for name, field in f.fields.items():
                value = f.initial.get(name, field.initial)
                if value is None or value is False or value == "":
                    continue
                key = f"{f.prefix}-{name}"
                if hasattr(value, "pk"):
                    value = value.pk
                data[key] = "on" if value is True else value
    return data


def test_add_a_store_then_edit_it_keeping_the_token(admin_client):
    response = admin_client.post(reverse("admin:integration_account_add"), store_form())
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    account = Account.objects.get(app_key="vtexappkey-newstore-ABC")
    assert account.app_token == "new-token-SECRET-1"
    assert account.feed_config.statuses == ["ready-for-handling", "canceled"]
    assert set(account.rules.values_list("state", flat=True)) == {"ready-for-handling", "canceled"}
    page = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "new-token-SECRET-1" not in page and 'name="app_token"' in page
    data = change_form_data(admin_client, account)
    data["name"] = "Renamed store"
    response = admin_client.post(reverse("admin:integration_account_change", args=[account.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    account.refresh_from_db()
    assert account.name == "Renamed store" and account.app_token == "new-token-SECRET-1"


def test_a_new_store_needs_its_token(admin_client):
    response = admin_client.post(reverse("admin:integration_account_add"), store_form(app_token=""))
    assert response.status_code == 200
    assert "A new store needs its app token." in response.content.decode()


# --- test connection ----------------------------------------------------------------------------------
def test_test_connection_shows_vtex_answer_and_stores_the_backlog(admin_client, account, vtex):
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config(quantity=3, age=125.0))
    _, msgs = run_action(admin_client, "check_connection", [account.pk])
    assert msgs == [("success", "Test store: connected. VTEX's feed for this app key: FromWorkflow [ready-for-handling, canceled], "
                                "visibility timeout 250 s, retention 4.0 days; 3 messages in the feed, the oldest 2 min old.")]
    account.refresh_from_db()
    assert (account.feed_backlog_quantity, account.feed_backlog_age) == (3, 125.0)
    assert account.feed_backlog_checked_at is not None
    # Never *retrieve feed items*: that would hide events from the feed cycle.
    assert [c.request.url for c in vtex.calls] == [FEED_CONFIG]


def test_test_connection_warns_when_the_backlog_nears_the_retention(account, vtex):
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config(quantity=900, age=3 * 86400))
    result = store_ops.check_store_connection(account)
    assert result.level == results.WARNING and "75% of the feed's retention" in result.text


@pytest.mark.parametrize("status,expected", [
    (401, "connection failed: Unauthorized: VTEX GET /api/orders/feed/config answered 401: check the app key and token"),
    (500, "connection failed: ServerError: VTEX GET /api/orders/feed/config answered 500"),
    (404, "VTEX accepted the credentials but this app key has no feed configuration (NotFound"),
])
def test_test_connection_shows_the_typed_error(admin_client, account, vtex, status, expected, monkeypatch):
    monkeypatch.setattr("integration.vtex.client.GET_RETRY_DELAYS", (0, 0))
    vtex.add("GET", FEED_CONFIG, status=status, json={"error": "nope"})
    _, msgs = run_action(admin_client, "check_connection", [account.pk])
    assert len(msgs) == 1 and msgs[0][0] == ("warning" if status == 404 else "error")
    assert msgs[0][1].startswith("Test store: " + expected), msgs
    assert "test-app-token-SECRET-123" not in msgs[0][1]
    account.refresh_from_db()
    assert account.feed_backlog_checked_at is None


def test_test_connection_one_message_per_store(admin_client, account, make_account, vtex):
    other = make_account(name="Other store", account_name="other", app_key="key-other", api_base_url="https://other.example.com")
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config())
    vtex.add("GET", "https://other.example.com/api/orders/feed/config", status=403)
    _, msgs = run_action(admin_client, "check_connection", [account.pk, other.pk])
    assert [level for level, _ in msgs] == ["error", "success"]   # by store name: Other, Test
    assert msgs[0][1].startswith("Other store: connection failed: Unauthorized")


# --- run a feed cycle, pause, resume, reconcile -------------------------------------------------------------
@pytest.fixture
def enqueued_tasks(monkeypatch):
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue", lambda func, *args, **kw: calls.append((func, args)))
    return calls


@pytest.fixture
def dispatches(enqueued):
    return enqueued


def test_run_feed_cycle_now_enqueues_the_stores_cycle(admin_client, account, make_account, enqueued_tasks):
    inactive = make_account(name="Closed store", account_name="closed", app_key="key-closed", active=False)
    _, msgs = run_action(admin_client, "run_feed_cycle", [account.pk, inactive.pk])
    assert enqueued_tasks == [("integration.tasks.feed_cycle_for_account", (account.pk,))]
    assert msgs == [("warning", "Closed store: inactive: no feed cycle runs for it. Make it active first."),
                    ("success", "Test store: feed cycle queued; its result shows in the store list when it has run.")]


def test_pause_holds_the_stores_syncs_and_resume_sends_them(admin_client, account, binding, dispatches):
    sync = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.PENDING, next_attempt_at=timezone.now())
    assert list(due_syncs().values_list("pk", flat=True)) == [sync.pk]
    _, msgs = run_action(admin_client, "pause_stores", [account.pk])
    assert msgs == [("success", "Test store: paused: it keeps receiving and storing events, but sends nothing and never "
                                "calls start-handling; its syncs wait (1 pending now).")]
    account.refresh_from_db()
    assert account.paused and not due_syncs().exists()
    _, msgs = run_action(admin_client, "pause_stores", [account.pk])
    assert msgs == [("warning", "Test store: already paused.")]
    _, msgs = run_action(admin_client, "resume_stores", [account.pk])
    assert msgs == [("success", "Test store: resumed: its 1 pending sync goes out now.")]
    account.refresh_from_db()
    assert not account.paused and dispatches == [account.pk]
    assert list(due_syncs().values_list("pk", flat=True)) == [sync.pk]


def test_an_operator_may_pause_a_store_but_not_push_its_feed(operator_client, account, dispatches):
    _, msgs = run_action(operator_client, "pause_stores", [account.pk])
    assert msgs[0][0] == "success"
    account.refresh_from_db()
    assert account.paused
    html = operator_client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="resume_stores"' in html and 'value="check_connection"' in html
    assert operator_client.get(reverse("admin:integration_account_feed_push", args=[account.pk])).status_code == 403
    assert operator_client.post(reverse("admin:integration_account_feed_load", args=[account.pk]), {"confirm": "yes"}).status_code == 403


def test_view_only_users_get_no_store_actions(client, django_user_model, account):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("vic", password="vic-password-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "pause_stores" not in html
    client.post(reverse(CHANGELIST), {"action": "pause_stores", ACTION_CHECKBOX_NAME: [account.pk], "index": 0})
    account.refresh_from_db()
    assert not account.paused


def list_orders_url(account):
    return account.base_url + "/api/oms/pvt/orders"


def test_reconcile_now_brings_in_a_missing_order_and_the_store_page_shows_the_report(admin_client, account, vtex, dispatches, settings):
    import re

    from tests.fake_oms import make_order

    event(account, "100-01")  # already known
    vtex.add("GET", re.compile(re.escape(list_orders_url(account)) + r"\?.*"),
             json={"list": [{"orderId": "100-01"}, {"orderId": "200-01"}], "paging": {"pages": 1}})
    vtex.add("GET", list_orders_url(account) + "/200-01", json=make_order("200-01"))
    _, msgs = run_action(admin_client, "reconcile_stores", [account.pk])
    assert msgs == [("warning", "Test store: listed 2 ready-for-handling orders in VTEX, brought in 1: 200-01.")]
    assert FeedEvent.objects.filter(account=account, order_id="200-01", source="reconcile").exists()
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "listed 2 ready-for-handling orders in VTEX, brought in 1 (200-01)" in html


def test_reconcile_now_reports_vtex_errors(account, vtex):
    import re

    vtex.add("GET", re.compile(re.escape(list_orders_url(account)) + r".*"), status=403)
    result = store_ops.reconcile_now(account)
    assert result.level == results.ERROR and "reconciliation failed: VTEX GET /api/oms/pvt/orders answered 403" in result.text
    account.refresh_from_db()
    assert account.last_reconcile_report["error"]


# --- routing rules the feed never delivers -------------------------------------------------------------------
def test_a_rule_outside_the_feed_filter_is_warned_about(admin_client, account):
    assert feed_configuration.rules_outside_feed(account) == []
    RoutingRule.objects.create(account=account, state="invoiced", action="status")
    message = feed_configuration.rules_outside_feed_message(account)
    assert message == ("Test store: the feed's FromWorkflow filter does not include invoiced, so this routing rule can "
                       "never fire from the feed. Add the status to the feed configuration (and push it to VTEX), or remove the rule.")
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert 'id="rules-warning"' in html and "does not include invoiced" in html
    # Saving the store says so too.
    data = change_form_data(admin_client, account)
    response = admin_client.post(reverse("admin:integration_account_change", args=[account.pk]), data, follow=True)
    assert any("does not include invoiced" in str(m) for m in response.context["messages"])
    # Hook-only stores and FromOrders filters cannot be checked that way.
    Account.objects.filter(pk=account.pk).update(intake_mode="hook")
    account.refresh_from_db()
    assert feed_configuration.rules_outside_feed(account) == []


def test_deleting_a_store_from_the_list_still_works(admin_client, account, binding):
    # (A store with syncs cannot be deleted from the admin: syncs are never deleted there.)
    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(account.pk)], "index": 0}
    response = admin_client.post(reverse(CHANGELIST), data)
    assert "Are you sure" in response.content.decode()
    response = admin_client.post(reverse(CHANGELIST), {**data, "post": "yes"}, follow=True)
    assert response.status_code == 200 and not Account.objects.exists()


def test_a_feed_that_delivers_cancellation_requests_gets_their_rule_once(admin_client, account):
    """Marketplaces: cancellation-requested in the feed filter adds `cancellation-requested → Status changed`
    (adapters that take status changes are asked), once; a store without it in the filter gets no such rule."""
    assert not account.rules.filter(state="cancellation-requested").exists()
    data = change_form_data(admin_client, account)
    [key] = [k for k in data if k.endswith("-statuses")]
    data[key] = ["ready-for-handling", "canceled", "cancellation-requested"]
    response = admin_client.post(reverse("admin:integration_account_change", args=[account.pk]), data, follow=True)
    assert response.status_code == 200
    assert any("'cancellation-requested → Status changed' was added" in str(m) for m in response.context["messages"])
    assert list(account.rules.filter(state="cancellation-requested").values_list("action", flat=True)) == ["status"]
    # The operator's own rule for the state stays the only one; saving again adds nothing.
    account.rules.filter(state="cancellation-requested").update(action="send")
    response = admin_client.post(reverse("admin:integration_account_change", args=[account.pk]),
                                 change_form_data(admin_client, account), follow=True)
    assert not any("was added" in str(m) for m in response.context["messages"])
    assert list(account.rules.filter(state="cancellation-requested").values_list("action", flat=True)) == ["send"]
