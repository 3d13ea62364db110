"""The hook path through to a delivered order and exactly one start-handling.

The recording adapters (recorder, bindings) and the fake VTEX (feed, oms) come from
tests/shared_fixtures.py, dispatched inline as in tests/pipeline. Notifications are POSTed with the Django test client; the last test runs the real
thing: the sandbox pings and pushes to live_server, the feed delivers the same changes.
"""
import json
import time

import pytest

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.vtex_push.registration import register_hook
from integration.models import Account, FeedEvent, Order, OrderSync, StartHandlingState
from tests.fake_feed import feed_item
from tests.vtex_push.payloads import notification


pytestmark = pytest.mark.usefixtures("inline_dispatch")

def post(client, account, body):
    response = client.post(f"/hooks/vtex/{account.pk}/{account.hook_secret}/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_a_hook_notification_becomes_one_delivery_per_adapter_and_one_start_handling(client, account, bindings, oms, recorder):
    oms.add("1-01")
    assert post(client, account, notification("1-01")) == {"stored": True}
    assert OrderSync.objects.filter(order__order_id="1-01").count() == 2  # routed in the request
    report = dispatch_due(budget=10)
    assert sorted((c[0], c[1], c[2]) for c in recorder.calls) == [("rec_a", "send", "1-01"), ("rec_b", "send", "1-01")]
    assert oms.start_handling_calls == {"1-01": 1}
    assert report.start_handling == {StartHandlingState.DONE: 1}
    assert Order.objects.get(order_id="1-01").start_handling_state == StartHandlingState.DONE
    # The same notification again, and another dispatch: nothing more happens.
    assert post(client, account, notification("1-01")) == {"duplicate": True}
    dispatch_due(budget=10)
    assert recorder.count() == 2 and oms.start_handling_calls == {"1-01": 1}


@pytest.mark.django_db
def test_hook_and_feed_with_the_same_changes_deliver_each_order_once(client, account, bindings, feed, oms, recorder):
    Account.objects.filter(pk=account.pk).update(intake_mode="both")
    for n in range(10):
        oms.add(f"{n}-01")
    # Half the orders arrive by hook first, all of them by feed, some by hook again afterwards.
    for n in range(5):
        assert post(client, account, notification(f"{n}-01", change=f"2026-11-27T10:0{n}:00.1234567Z")) == {"stored": True}
    feed.add(*[feed_item(f"{n}-01", change=f"2026-11-27T10:0{n}:00.1234567Z") for n in range(10)])
    summary = run_feed_cycle(account)
    assert summary.ok and (summary.new, summary.duplicate) == (5, 5) and len(feed.committed) == 10
    for n in range(3, 8):
        assert post(client, account, notification(f"{n}-01", change=f"2026-11-27T07:0{n}:00.1234567-03:00")) == {"duplicate": True}
    assert FeedEvent.objects.count() == 10 and OrderSync.objects.count() == 20
    dispatch_due(budget=10)
    for key in ("rec_a", "rec_b"):
        sent = [c[2] for c in recorder.calls if c[0] == key and c[1] == "send"]
        assert sorted(sent) == sorted(f"{n}-01" for n in range(10))
    assert len(oms.start_handling_calls) == 10 and set(oms.start_handling_calls.values()) == {1}


@pytest.mark.django_db
def test_a_hooked_cancel_before_dispatch_stops_the_send(client, account, bindings, oms, recorder):
    oms.add("9-01", "canceled")
    post(client, account, notification("9-01"))
    post(client, account, notification("9-01", "canceled", change="2026-11-27T11:00:00Z"))
    dispatch_due(budget=10)
    assert recorder.count() == 0 and oms.start_handling_calls == {}


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sandbox_pings_and_pushes_to_the_live_hub_and_the_feed_brings_only_duplicates(account, bindings, recorder, live_server, settings):
    from vtex_sandbox import Sandbox, SandboxServer

    sandbox = Sandbox(seed=5, hook_backoff_s=0.05)
    sandbox.add_account("teststore", app_key=account.app_key, app_token="test-app-token-SECRET-123")
    server = SandboxServer(sandbox, host="127.0.0.1", port=0).start()
    try:
        Account.objects.filter(pk=account.pk).update(api_base_url=server.url, intake_mode="both")
        account.refresh_from_db()
        settings.PUBLIC_BASE_URL = live_server.url  # loopback http: allowed for a store on a sandbox
        result = register_hook(account)
        assert result.ok, result.message
        assert sandbox.hook_config_get(account.app_key)["hook"]["url"] == f"{live_server.url}/hooks/vtex/{account.pk}/{account.hook_secret}/"

        order_ids = sandbox.create_orders(account.app_key, 6)
        assert _wait(lambda: FeedEvent.objects.count() >= 6 and sandbox.hooks.pending() == 0)
        assert sandbox.stats()["hook_failed"] == 0
        assert sorted(FeedEvent.objects.values_list("order_id", flat=True)) == sorted(order_ids)
        assert set(FeedEvent.objects.values_list("source", flat=True)) == {"hook"}

        summary = run_feed_cycle(account)  # the same six changes by feed: all duplicates, all committed
        assert summary.ok and summary.new == 0 and summary.duplicate == 6 and summary.committed == 6
        dispatch_due(budget=10)
        for key in ("rec_a", "rec_b"):
            assert sorted(c[2] for c in recorder.calls if c[0] == key and c[1] == "send") == sorted(order_ids)
        stats = sandbox.stats()
        assert stats["start_handling_calls"] == {oid: 1 for oid in order_ids}
        assert all(stats["statuses"][oid] == "handling" for oid in order_ids)
        account.refresh_from_db()
        assert account.last_hook_at is not None
    finally:
        server.stop()
        sandbox.close()
