import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from integration import alerts, retention
from integration.pipeline import reconciliation
from integration.models import (
    Account, AdapterBinding, Alert, AlertKind, EventSource, FeedEvent, Order, OrderSync, SyncAttempt, SyncStatus,
)
from tests.fake_feed import BASE
from tests.fake_oms import make_order

pytestmark = pytest.mark.django_db


# --- key rotation ----------------------------------------------------------------------------
def test_rotate_secrets_reencrypts_everything_with_the_newest_key(account, settings):
    from cryptography.fernet import Fernet

    binding = AdapterBinding(account=account, adapter_key="webhook")
    binding.apply_settings({"url": "https://erp.example/orders", "signing_secret": "binding-signing-secret"})
    binding.save()
    old_keys = list(settings.HUB_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.HUB_ENCRYPTION_KEYS = [new_key, *old_keys]
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "Re-encrypted 3 secrets" in out.getvalue()
    settings.HUB_ENCRYPTION_KEYS = [new_key]  # the old key is dropped: everything still reads
    assert Account.objects.get(pk=account.pk).app_token == "test-app-token-SECRET-123"
    assert AdapterBinding.objects.get(pk=binding.pk).secret_settings == {"signing_secret": "binding-signing-secret"}


def test_rotate_secrets_with_a_missing_key_changes_nothing(account, settings):
    from cryptography.fernet import Fernet

    before = Account.objects.get(pk=account.pk).app_token_ciphertext
    settings.HUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_secrets", stdout=StringIO())
    assert Account.objects.get(pk=account.pk).app_token_ciphertext == before


# --- retention ---------------------------------------------------------------------------------
def _aged(model, pks, field, days):
    model.objects.filter(pk__in=pks).update(**{field: timezone.now() - timedelta(days=days)})


def test_retention_prunes_old_finished_work_and_keeps_failures(account, recorder, settings):
    settings.RETENTION_BATCH_SIZE = 2  # several batches
    binding = AdapterBinding.objects.create(account=account, adapter_key="rec_a")
    old_ok, old_failed, new_ok = [], [], []
    for n in range(5):
        order = Order.objects.create(account=account, order_id=f"old-{n}", snapshot=make_order(f"old-{n}"))
        s = OrderSync.objects.create(order=order, binding=binding, action="send", status=SyncStatus.SUCCEEDED)
        SyncAttempt.objects.create(sync=s, number=1, outcome="succeeded", request_excerpt='{"email": "ana@example.com"}')
        old_ok.append(s.pk)
    failed_order = Order.objects.create(account=account, order_id="old-failed", snapshot=make_order("old-failed"))
    old_failed.append(OrderSync.objects.create(order=failed_order, binding=binding, action="send", status=SyncStatus.FAILED).pk)
    fresh = Order.objects.create(account=account, order_id="fresh", snapshot=make_order("fresh"))
    new_ok.append(OrderSync.objects.create(order=fresh, binding=binding, action="send", status=SyncStatus.SUCCEEDED).pk)
    FeedEvent.objects.create(account=account, change_key="k-old", order_id="old-0", state="ready-for-handling", committed_at=timezone.now(), handle="h")
    FeedEvent.objects.create(account=account, change_key="k-new", order_id="fresh", state="ready-for-handling", committed_at=timezone.now(), handle="h2")
    _aged(OrderSync, old_ok + old_failed, "updated_at", 40)
    _aged(Order, Order.objects.exclude(order_id="fresh").values_list("pk", flat=True), "updated_at", 40)
    _aged(Order, Order.objects.exclude(order_id="fresh").values_list("pk", flat=True), "created_at", 40)
    _aged(SyncAttempt, SyncAttempt.objects.values_list("pk", flat=True), "started_at", 40)
    _aged(FeedEvent, FeedEvent.objects.filter(change_key="k-old").values_list("pk", flat=True), "received_at", 40)

    report = retention.prune()
    assert (report.syncs, report.events, report.orders) == (5, 1, 5)
    assert not OrderSync.objects.filter(pk__in=old_ok).exists() and not SyncAttempt.objects.exists()
    assert OrderSync.objects.filter(pk__in=old_failed + new_ok).count() == 2
    kept = Order.objects.get(order_id="old-failed")
    assert kept.snapshot["clientProfileData"] == retention.SCRUBBED and kept.snapshot["shippingData"] == retention.SCRUBBED
    assert kept.snapshot["items"]  # the order itself stays readable
    assert "ana@example.com" not in json.dumps(kept.snapshot)
    assert Order.objects.get(order_id="fresh").snapshot["clientProfileData"]["email"] == "ana@example.com"
    assert FeedEvent.objects.filter(change_key="k-new").exists()


# --- reconciliation ------------------------------------------------------------------------------
def test_reconciliation_brings_in_orders_the_feed_lost(account, bindings, vtex, oms, recorder):
    for oid in ("lost-1", "lost-2", "known-1"):
        oms.add(oid)
    FeedEvent.objects.create(account=account, change_key="known", order_id="known-1", state="ready-for-handling")
    vtex.get(f"{BASE}/api/oms/pvt/orders", json={"list": [{"orderId": "lost-1"}, {"orderId": "known-1"}], "paging": {"pages": 2}})
    vtex.get(f"{BASE}/api/oms/pvt/orders", json={"list": [{"orderId": "lost-2"}], "paging": {"pages": 2}})
    report = reconciliation.reconcile_account(account)
    assert report.listed == 3 and report.brought_in == ["lost-1", "lost-2"]
    assert set(FeedEvent.objects.filter(source=EventSource.RECONCILE).values_list("order_id", flat=True)) == {"lost-1", "lost-2"}
    first = vtex.calls[0].request.url
    assert "f_status=ready-for-handling" in first and "f_creationDate=creationDate" in first
    account.refresh_from_db()
    assert account.last_reconcile_report["brought_in"] == ["lost-1", "lost-2"]
    from integration.pipeline.dispatch import dispatch_due

    dispatch_due(budget=5)
    assert recorder.count("rec_a") == 2  # the lost orders go through the same path as feed orders


# --- alerts ------------------------------------------------------------------------------------
@override_settings(ALERT_EMAILS=["ops@example.com"], ALERT_CYCLE_FAILURES=2)
def test_a_failing_feed_cycle_alerts_once_per_episode_and_recovers(account, vtex, mailoutbox):
    from integration.pipeline.feed_cycle import run_feed_cycle

    vtex.get(f"{BASE}/api/orders/feed", status=500)
    for _ in range(4):
        run_feed_cycle(account)
    assert Alert.objects.filter(kind=AlertKind.CYCLE_FAILING, resolved_at__isnull=True).count() == 1
    assert len(mailoutbox) == 1 and "ALERT" in mailoutbox[0].subject and "4 times" not in mailoutbox[0].subject
    vtex.replace("GET", f"{BASE}/api/orders/feed", json=[])
    run_feed_cycle(account)
    alert = Alert.objects.get()
    assert alert.resolved_at is not None
    assert len(mailoutbox) == 2 and "RECOVERED" in mailoutbox[1].subject


def test_alert_conditions_and_the_webhook_channel(account, recorder, vtex, settings):
    settings.ALERT_WEBHOOK_URL = "https://alerts.example/hook"
    settings.ALERT_PENDING_AGE_SECONDS = 60
    settings.ALERT_FEED_BACKLOG_SECONDS = 3600
    vtex.post("https://alerts.example/hook", json={})
    vtex.get(f"{BASE}/api/orders/feed/config", json={"filter": {}, "queue": {}, "quantity": 900, "approximateAgeOfOldestMessageInSeconds": 7200})
    binding = AdapterBinding.objects.create(account=account, adapter_key="rec_a")
    order = Order.objects.create(account=account, order_id="1-01")
    sync = OrderSync.objects.create(order=order, binding=binding, action="send")
    OrderSync.objects.filter(pk=sync.pk).update(created_at=timezone.now() - timedelta(hours=2))
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=9, breaker_open_until=timezone.now() + timedelta(minutes=5))
    alerts.check_alerts()
    alerts.check_alerts()  # a second check announces nothing new
    kinds = set(Alert.objects.filter(resolved_at__isnull=True).values_list("kind", flat=True))
    assert kinds == {AlertKind.PENDING_TOO_OLD, AlertKind.FEED_BACKLOG, AlertKind.BREAKER_OPEN}
    posts = [json.loads(c.request.body) for c in vtex.calls if c.request.url.startswith("https://alerts.example")]
    assert len(posts) == 3 and {p["event"] for p in posts} == {"alert.opened"}
    OrderSync.objects.filter(pk=sync.pk).update(status=SyncStatus.SUCCEEDED)
    alerts.evaluate_all()
    recovered = [json.loads(c.request.body) for c in vtex.calls if c.request.url.startswith("https://alerts.example")][3:]
    assert [p["kind"] for p in recovered] == [AlertKind.PENDING_TOO_OLD] and recovered[0]["event"] == "alert.recovered"


def test_a_silent_hook_alerts(make_account, settings):
    settings.ALERT_HOOK_SILENT_SECONDS = 60
    store = make_account(intake_mode="hook")
    Account.objects.filter(pk=store.pk).update(last_hook_at=timezone.now() - timedelta(minutes=5))
    alerts.evaluate_all()
    assert Alert.objects.get().kind == AlertKind.HOOK_SILENT


def test_a_plugin_hears_each_alert_episode_through_alert_changed(account, settings):
    from integration.plugins import hookimpl
    from integration.plugins.manager import get_registry

    heard = []

    class Pager:
        @hookimpl
        def alert_changed(self, alert, recovered):
            heard.append((alert.kind, alert.subject, recovered))

    registry = get_registry()
    registry.register(Pager(), "test-pager")
    try:
        alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", True, "old", account)
        alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", True, "still old", account)
        alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", False, "old", account)
        alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", False, "old", account)
    finally:
        registry.unregister("test-pager")
    assert heard == [(AlertKind.PENDING_TOO_OLD, "teststore", False), (AlertKind.PENDING_TOO_OLD, "teststore", True)]
