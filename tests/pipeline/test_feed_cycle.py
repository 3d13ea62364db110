import itertools
import time

import pytest
from django.db import DatabaseError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from integration.crypto import SecretDecryptionError
from integration.pipeline import feed_cycle
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import Account, FeedEvent
from tests.fake_feed import BASE, FakeFeed, feed_item

pytestmark = pytest.mark.django_db


class _QuickClock:
    """The `time` module for feed_cycle, with a monotonic clock that moves 1 ms a reading."""

    def __init__(self):
        self._ticks = itertools.count()

    def monotonic(self):
        return next(self._ticks) / 1000

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def quick_host(monkeypatch):
    """The cycle tells a backlog's tail from a flow by the time between its retrieves: a lot of 5
    read ahead 0.25 s or more after a full one (a full lot in FOLLOW_MIN_WAIT or more) looks like
    orders arriving, and one empty retrieve is then waited out. On a loaded host storing the first
    lot can take that long (4 retrieves instead of 3). Here a backlog's lots come back to back,
    whatever the host."""
    monkeypatch.setattr(feed_cycle, "time", _QuickClock())


def test_items_are_stored_before_their_handles_are_committed(account, vtex, quick_host):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(15)])
    stored_at_commit = []
    feed.on_commit = lambda handles: stored_at_commit.append(
        (len(handles), FeedEvent.objects.filter(handle__in=handles).count()))
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    assert stored_at_commit == [(15, 15)]  # a full lot and the next retrieve's five, stored together, then committed
    assert (summary.fetched, summary.new, summary.committed, summary.batches) == (15, 15, 15, 3)
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 15


def test_a_backlog_is_stored_two_retrieves_a_transaction(account, vtex, quick_host):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(45)])
    with CaptureQueriesContext(connection) as ctx:
        summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    inserts = [q["sql"] for q in ctx.captured_queries if "INSERT" in q["sql"] and "integration_feedevent" in q["sql"]]
    assert len(inserts) == 3  # 10 + 10, 10 + 10, then 5 (and the empty retrieve that ends the cycle)
    assert (summary.fetched, summary.new, summary.committed, summary.batches) == (45, 45, 45, 6)
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 45


def test_a_refused_second_retrieve_still_stores_and_commits_the_lot_in_hand(account, vtex, quick_host):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(25)])
    feed.refuse_retrieves = {2}  # VTEX answers 429 to the retrieve that would complete the pair
    summary = run_feed_cycle(account)
    assert not summary.ok and "429" in summary.error  # the error ends the cycle, as any refused retrieve
    assert (summary.new, summary.committed) == (10, 10)  # the lot in hand is stored and committed, not left to time out
    assert sorted(feed.committed) == sorted(i["handle"] for i in [feed_item(f"{n}-01") for n in range(10)])
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 10


def test_duplicates_and_twin_event_ids_are_stored_once_and_committed_every_time(account, vtex):
    feed = FakeFeed(vtex)
    original = feed_item("100-01")
    duplicate = dict(original, handle="another-handle-same-event")
    twin = dict(original, eventId="TWIN-EVENT-ID", handle="twin-handle")
    # The same instant written with other precision and offset is still the same change.
    twin_other_spelling = dict(original, eventId="TWIN-2", handle="twin-handle-2", currentChange="2026-11-27T07:00:00.1234567-03:00")
    later_repeat = dict(original, eventId="LATER", handle="later-handle", currentChange="2026-11-27T11:00:00Z")
    feed.add(original, duplicate, twin, twin_other_spelling, later_repeat)
    summary = run_feed_cycle(account)
    assert summary.ok
    assert FeedEvent.objects.filter(order_id="100-01").count() == 2  # the original and the legitimate later repeat
    assert summary.duplicate == 3
    assert sorted(feed.committed) == sorted(i["handle"] for i in (original, duplicate, twin, twin_other_spelling, later_repeat))
    first = FeedEvent.objects.get(event_id=original["eventId"])
    assert first.duplicates == 3


def test_a_redelivery_in_a_later_cycle_is_a_duplicate(account, vtex):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    run_feed_cycle(account)
    feed.add(feed_item("1-01", handle="redelivered"))
    summary = run_feed_cycle(account)
    assert (summary.new, summary.duplicate, summary.committed) == (0, 1, 1)
    assert FeedEvent.objects.get().duplicates == 1
    assert feed.committed[-1] == "redelivered"


def test_when_storing_fails_nothing_is_committed(account, vtex, monkeypatch):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"), feed_item("2-01"))

    def broken_insert(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(FeedEvent.objects, "bulk_create", broken_insert)
    summary = run_feed_cycle(account)
    assert not summary.ok
    assert "none committed" in summary.error and "disk full" in summary.error
    assert feed.committed == []
    assert FeedEvent.objects.count() == 0
    account.refresh_from_db()
    assert account.last_cycle_ok is False and "disk full" in account.last_cycle_error


def test_when_the_commit_fails_the_next_cycle_recovers(account, vtex):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"), feed_item("2-01"))
    feed.commit_failures = 1
    first = run_feed_cycle(account)
    assert not first.ok and "500" in first.error
    assert FeedEvent.objects.count() == 2  # safe in our database already
    assert FeedEvent.objects.filter(committed_at__isnull=True).count() == 2
    second = run_feed_cycle(account)
    assert second.ok
    assert (second.new, second.duplicate, second.committed) == (0, 2, 2)
    assert FeedEvent.objects.filter(committed_at__isnull=True).count() == 0


def test_malformed_items_are_kept_committed_and_explained(account, vtex):
    feed = FakeFeed(vtex)
    feed.add(
        {"eventId": "E1", "handle": "h-no-order", "state": "ready-for-handling", "currentChange": "2026-11-27T10:00:00Z"},
        {"eventId": "E2", "handle": "h-typed", "state": 5, "orderId": "9-01", "currentChange": "2026-11-27T10:00:00Z"},
        feed_item("3-01"),
    )
    summary = run_feed_cycle(account)
    assert summary.ok and summary.malformed == 2 and summary.new == 3
    bad = {e.handle: e for e in FeedEvent.objects.exclude(error="")}
    assert "orderId is missing" in bad["h-no-order"].error
    assert "state is a int" in bad["h-typed"].error
    assert bad["h-typed"].payload["state"] == 5
    assert sorted(feed.committed) == ["h-no-order", "h-typed", "handle-3-01-ready-for-handling-"]


def test_a_response_that_is_not_a_list_is_a_clear_error(account, vtex):
    vtex.get(f"{BASE}/api/orders/feed", json={"unexpected": True})
    summary = run_feed_cycle(account)
    assert not summary.ok and "not a list" in summary.error


def test_a_handle_longer_than_255_characters_is_stored_whole(account, vtex):
    feed = FakeFeed(vtex)
    long_handle = "eyJ" + "x" * 1200
    feed.add(feed_item("1-01", handle=long_handle))
    assert run_feed_cycle(account).ok
    assert FeedEvent.objects.get().handle == long_handle
    assert feed.committed == [long_handle]


def test_no_feed_configuration_is_explained(account, vtex):
    vtex.get(f"{BASE}/api/orders/feed", status=404, json={"error": {"message": "not found"}})
    summary = run_feed_cycle(account)
    assert not summary.ok and "no feed configuration" in summary.error


def test_the_lease_keeps_two_cycles_of_one_store_apart(account, vtex):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    nested = []
    # While the first cycle holds the lease (it is committing), a second cycle must not start.
    feed.on_commit = lambda handles: nested.append(run_feed_cycle(Account.objects.get(pk=account.pk)))
    first = run_feed_cycle(account)
    assert first.ok
    assert nested[0].skipped.startswith("another feed cycle")
    assert feed.retrieve_calls == 2  # only the first cycle called VTEX
    account.refresh_from_db()
    assert account.lease_owner == "" and account.lease_until is None


def test_an_expired_lease_is_taken_over(account, vtex):
    from datetime import timedelta

    from django.utils import timezone

    Account.objects.filter(pk=account.pk).update(lease_owner="dead-worker", lease_until=timezone.now() - timedelta(seconds=1))
    FakeFeed(vtex)
    assert run_feed_cycle(account).ok


def test_a_store_whose_credentials_vtex_rejects_does_not_stop_the_next(make_account, vtex):
    bad = make_account(name="Bad", account_name="bad", app_key="k-bad", api_base_url="https://bad.example")
    good = make_account(name="Good", account_name="teststore", app_key="k-good")
    vtex.get("https://bad.example/api/orders/feed", status=401, json={"error": {"code": "1"}})
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    from django.core.management import call_command
    from io import StringIO

    out = StringIO()
    call_command("run_feed_cycle", "--intake-only", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("bad: error") and "app key and token" in line for line in lines)
    assert any(line.startswith("teststore: ok") for line in lines)
    bad.refresh_from_db(); good.refresh_from_db()
    assert bad.last_cycle_ok is False and good.last_cycle_ok is True


def test_a_wrong_encryption_key_is_a_clear_error_never_the_ciphertext(account, vtex):
    from cryptography.fernet import Fernet

    ciphertext = account.app_token_ciphertext
    assert ciphertext and "test-app-token" not in ciphertext
    with override_settings(HUB_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        fresh = Account.objects.get(pk=account.pk)
        with pytest.raises(SecretDecryptionError, match="HUB_ENCRYPTION_KEYS"):
            fresh.app_token
        summary = run_feed_cycle(fresh)
    assert not summary.ok and "cannot be decrypted" in summary.error
    assert len(vtex.calls) == 0


def test_key_rotation_keeps_old_secrets_readable(account):
    from cryptography.fernet import Fernet

    from django.conf import settings

    new_key = Fernet.generate_key().decode()
    with override_settings(HUB_ENCRYPTION_KEYS=[new_key, *settings.HUB_ENCRYPTION_KEYS]):
        assert Account.objects.get(pk=account.pk).app_token == "test-app-token-SECRET-123"


@pytest.mark.parametrize("change", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "not a date", ""])
def test_an_absurd_change_time_is_kept_not_a_batch_breaker(account, vtex, change):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01", change=change, handle="odd"), feed_item("2-01"))
    summary = run_feed_cycle(account)
    assert summary.ok and summary.committed == 2
    assert FeedEvent.objects.count() == 2


def test_feed_item_keys_are_read_whatever_their_case(account, vtex, bindings, oms, recorder):
    from integration.pipeline.dispatch import dispatch_due

    feed = FakeFeed(vtex)
    item = feed_item("77-01")
    pascal = {key[0].upper() + key[1:]: value for key, value in item.items()}  # EventId, Handle, OrderId, ...
    shouting = {key.upper(): value for key, value in feed_item("78-01").items()}
    feed.add(pascal, shouting)
    oms.add("77-01")
    oms.add("78-01")
    summary = run_feed_cycle(account)
    assert summary.ok and summary.malformed == 0 and summary.new == 2
    event = FeedEvent.objects.get(order_id="77-01")
    assert (event.event_id, event.state, event.domain, event.last_state) == (
        "EV-77-01-ready-for-handling", "ready-for-handling", "Fulfillment", "window-to-cancel")
    assert sorted(feed.committed) == sorted([pascal["Handle"], shouting["HANDLE"]])
    dispatch_due(budget=30)
    assert {c[2] for c in recorder.calls} == {"77-01", "78-01"}


def test_an_order_id_over_the_column_length_is_refused_visibly_not_cut(account, vtex):
    feed = FakeFeed(vtex)
    long_id = "9" * 65 + "-01"
    feed.add(feed_item(long_id, handle="h-long"), feed_item("3-01"))
    summary = run_feed_cycle(account)
    assert summary.ok and summary.malformed == 1 and summary.committed == 2
    bad = FeedEvent.objects.get(handle="h-long")
    assert bad.error == "Malformed feed item: orderId is 68 characters long; at most 64 can be stored"
    assert bad.order_id == "" and bad.payload["orderId"] == long_id  # the whole id is kept in the payload
    assert not FeedEvent.objects.filter(order_id__startswith="9999").exists()
