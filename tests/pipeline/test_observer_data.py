"""Observer hooks hand plugins plain, frozen values (integration.plugins.events), never model rows."""
import dataclasses

import pytest

from integration import alerts
from integration.models import AlertKind, OrderSync, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.plugins import AlertInfo, PermanentError, StoreInfo, SyncInfo, hookimpl
from integration.plugins.manager import get_registry
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


class Listener:
    def __init__(self):
        self.heard = []

    @hookimpl
    def sync_succeeded(self, sync):
        self.heard.append(("sync_succeeded", sync))

    @hookimpl
    def sync_failed(self, sync, error):
        self.heard.append(("sync_failed", sync, error))

    @hookimpl
    def feed_cycle_finished(self, account, summary):
        self.heard.append(("feed_cycle_finished", account, summary))

    @hookimpl
    def alert_changed(self, alert, recovered):
        self.heard.append(("alert_changed", alert, recovered))


@pytest.fixture
def listener():
    registry = get_registry()
    plugin = Listener()
    registry.register(plugin, "test-listener")
    yield plugin
    registry.unregister("test-listener")


def assert_plain(value):
    assert dataclasses.is_dataclass(value) and not hasattr(value, "_meta"), f"{value!r} is not plain data"
    field = dataclasses.fields(value)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


def test_a_feed_cycle_and_a_delivery_are_told_as_plain_values(account, bindings, feed, oms, listener):
    oms.add("1001-01")
    feed.add(feed_item("1001-01"))
    assert run_feed_cycle(account).ok
    dispatch_due(budget=30)

    cycle = [h for h in listener.heard if h[0] == "feed_cycle_finished"]
    assert len(cycle) == 1
    store, summary = cycle[0][1], cycle[0][2]
    assert_plain(store)
    assert store == StoreInfo(id=account.pk, account_name=account.account_name, name=account.name)
    assert summary["new"] == 1 and summary["committed"] == 1

    delivered = [h[1] for h in listener.heard if h[0] == "sync_succeeded"]
    assert len(delivered) == 2  # one per binding
    for info in delivered:
        assert_plain(info)
        assert isinstance(info, SyncInfo) and info.store == store
        row = OrderSync.objects.get(pk=info.id)
        assert (info.order_id, info.action, info.status, info.attempts) == ("1001-01", "send", SyncStatus.SUCCEEDED, 1)
        assert (info.binding_id, info.adapter_key, info.erp_reference) == (row.binding_id, row.binding.adapter_key, row.erp_reference)
        assert info.idempotency_key == row.idempotency_key


def test_a_sync_that_fails_for_good_is_told_as_a_plain_value(account, bindings, feed, oms, recorder, listener):
    recorder.always["rec_a"] = PermanentError("ERP said 422: no such SKU")
    oms.add("1002-01")
    feed.add(feed_item("1002-01"))
    assert run_feed_cycle(account).ok
    dispatch_due(budget=30)
    failed = [h for h in listener.heard if h[0] == "sync_failed"]
    assert len(failed) == 1
    info, error = failed[0][1], failed[0][2]
    assert_plain(info)
    assert (info.order_id, info.adapter_key, info.status) == ("1002-01", "rec_a", SyncStatus.FAILED)
    assert "no such SKU" in error and info.last_error == error


def test_an_alert_episode_is_told_as_a_plain_value(account, listener):
    alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", True, "old", account)
    alerts.set_condition(AlertKind.PENDING_TOO_OLD, "teststore", False, "old", account, "fine again")
    (_, opened, was_recovered), (_, closed, recovered) = [h for h in listener.heard if h[0] == "alert_changed"]
    for info in (opened, closed):
        assert_plain(info)
        assert isinstance(info, AlertInfo) and info.kind == AlertKind.PENDING_TOO_OLD
        assert info.kind_label == "Oldest pending sync too old" and info.store == StoreInfo.of(account)
    assert (was_recovered, recovered) == (False, True)
    assert opened.resolved_at is None and closed.resolved_at is not None and closed.recovery_message == "fine again"
