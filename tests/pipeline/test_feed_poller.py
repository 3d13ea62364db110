"""The feed poller: one task polls every feed-mode store as soon as it is due.

VTEX is mocked over HTTP (a FakeFeed per store). The poller polls on threads, so these tests
commit for real (`transaction=True`): other threads cannot see a test transaction's rows.
"""
import threading
import time
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from integration import queueing, tasks
from integration.models import Account, FeedEvent, FeedPollerSlot
from integration.pipeline.feed_cycle import Flow, commit_waiting, run_feed_turn
from integration.pipeline.feed_poller import run_poller, start_poller
from integration.pipeline.leases import take_lease
from tests.fake_feed import FakeFeed, feed_item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def poll_settings(settings):
    settings.FEED_POLL_INTERVAL = 60  # an empty feed is not polled again within a test
    settings.FEED_TURN_BUDGET = 30
    settings.FEED_POLLERS = 1
    return settings


@pytest.fixture
def queued(monkeypatch):
    """Tasks handed to django-q2, recorded instead of sent to the broker."""
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: calls.append((func, args, kw)))
    return calls


def stores(make_account, vtex, n, feed_class=FakeFeed):
    made = []
    for i in range(n):
        base = f"https://store{i}.vtexcommercestable.com.br"
        account = make_account(name=f"Store {i}", account_name=f"store{i}", app_key=f"vtexappkey-store{i}-X", api_base_url=base)
        made.append((account, feed_class(vtex, base=base)))
    return made


def test_a_turn_keeps_retrieving_while_the_lots_come_full(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(35)])
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    flow = Flow()
    summary, next_poll = run_feed_turn(account, "poller-test", flow)
    assert summary.ok, summary.error
    assert (summary.fetched, summary.new, summary.batches) == (35, 35, 4)
    assert summary.drained and FeedEvent.objects.count() == 35
    assert next_poll <= poll_settings.FEED_POLL_INTERVAL
    account.refresh_from_db()
    assert account.lease_owner == "" and account.last_cycle_ok  # released into the wait for its next poll
    # Handles are committed two lots at a time; the last 15 wait for the store's next turn, which
    # is due within FEED_COMMIT_DELAY (or for the poller's end).
    assert summary.committed == 20 and feed.commit_calls == 1 and len(flow.pending) == 15
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 20
    commit_waiting(account, flow.pending)
    assert len(feed.committed) == 35 and feed.commit_calls == 2 and not flow.pending
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 35


def test_an_empty_feed_is_polled_again_only_after_the_interval(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    summary, next_poll = run_feed_turn(account, "poller-test", Flow())
    assert summary.ok and summary.fetched == 0 and next_poll == poll_settings.FEED_POLL_INTERVAL
    account.refresh_from_db()
    assert account.lease_owner == "" and account.lease_until > timezone.now() + timedelta(seconds=30)
    # A poller running meanwhile finds the store not due: no second retrieve.
    report = run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert feed.retrieve_calls == 1 and report.turns == 0


def test_a_store_whose_wait_is_over_is_polled_again(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert feed.retrieve_calls == 1 and FeedEvent.objects.count() == 1
    feed.add(feed_item("2-01"))
    Account.objects.filter(pk=account.pk).update(lease_until=Now())  # its interval has passed
    run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert feed.retrieve_calls == 2 and FeedEvent.objects.count() == 2


def test_one_poller_task_serves_sixteen_stores(make_account, vtex, poll_settings, enqueued):
    made = stores(make_account, vtex, 16)
    for n, (account, feed) in enumerate(made):
        feed.add(*[feed_item(f"{n}{k:02d}-01") for k in range(12)])
    report = run_poller(run_seconds=120, threads=4, hand_over=False, until_idle=True)
    assert len(report.stores) == 16 and report.failed == 0
    assert FeedEvent.objects.count() == 16 * 12
    assert all(feed.committed and not feed.items for _, feed in made)
    assert FeedPollerSlot.objects.count() == 1  # one slot: one poller for all of them


def test_a_failing_store_does_not_stop_the_others_and_is_polled_less_often(make_account, vtex, poll_settings, enqueued):
    (bad, bad_feed), (good, good_feed), (other, other_feed) = stores(make_account, vtex, 3)
    vtex.replace("GET", f"{bad.api_base_url}/api/orders/feed", status=500, body="down")
    good_feed.add(feed_item("1-01"))
    other_feed.add(feed_item("2-01"))
    report = run_poller(run_seconds=120, threads=1, hand_over=False, until_idle=True)
    assert report.failed == 1 and FeedEvent.objects.count() == 2
    bad.refresh_from_db()
    assert bad.last_cycle_ok is False and bad.consecutive_cycle_failures == 1 and bad.lease_owner == ""
    assert bad.lease_until > timezone.now()  # backed off, not polled again at once


def test_a_store_another_poller_is_polling_is_left_alone(make_account, vtex, poll_settings, enqueued):
    (busy, busy_feed), (free, free_feed) = stores(make_account, vtex, 2)
    busy_feed.add(feed_item("1-01"))
    free_feed.add(feed_item("2-01"))
    take_lease(Account.objects.filter(pk=busy.pk), "poller-on-another-cluster", 60)
    run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert busy_feed.retrieve_calls == 0 and free_feed.retrieve_calls == 1


class WatchedFeed(FakeFeed):
    """Records a second retrieve of the same store while one is in flight."""

    lock = threading.Lock()
    overlaps = []

    def _retrieve(self, request):
        with self.lock:
            self.in_flight = getattr(self, "in_flight", 0) + 1
            if self.in_flight > 1:
                self.overlaps.append(request.url)
        try:
            time.sleep(0.02)  # widen the window a second poll of the same store would fall in
            return super()._retrieve(request)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_two_pollers_never_poll_one_store_at_once(make_account, vtex, poll_settings, enqueued):
    poll_settings.FEED_POLLERS = 2
    poll_settings.FEED_POLL_INTERVAL = 0  # every store is due again at once: the pollers compete for each
    WatchedFeed.overlaps = []
    made = stores(make_account, vtex, 4, feed_class=WatchedFeed)
    reports = []
    pollers = [threading.Thread(target=lambda: reports.append(run_poller(run_seconds=3, threads=4, hand_over=False)))
               for _ in range(2)]
    for t in pollers:
        t.start()
    for t in pollers:
        t.join()
    assert WatchedFeed.overlaps == []
    assert sum(feed.retrieve_calls for _, feed in made) >= 4  # each store polled (again and again, as a rule)
    assert len(reports) == 2 and all(not r.skipped for r in reports)  # two slots: both ran


def test_a_poller_beyond_the_slots_ends_at_once(account, vtex, poll_settings, enqueued):
    FakeFeed(vtex)
    FeedPollerSlot.objects.create(slot=0, lease_owner="poller-elsewhere", lease_until=timezone.now() + timedelta(seconds=30))
    report = run_poller(run_seconds=5.0, hand_over=False)
    assert report.skipped and report.turns == 0


def test_the_cluster_starting_enqueues_one_poller(account, poll_settings, queued):
    from django_q.signals import post_spawn

    for n in range(4):  # each of the cluster's four workers as it spawns
        post_spawn.send(sender="django_q", proc_name=f"Process-{n}")
    assert [func for func, _, _ in queued] == [queueing.FEED_POLLER_TASK]
    # The minute schedule finds the poller's slot reserved: nothing more.
    assert tasks.run_feed_cycles() == "feed poller already running"
    assert len(queued) == 1


def test_the_queued_poller_takes_its_reserved_slot_and_hands_over(account, vtex, poll_settings, queued):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    assert start_poller()
    [(_, (token,), _)] = queued
    report = run_poller(token, run_seconds=120, until_idle=True)
    assert not report.skipped and report.handed_over and FeedEvent.objects.count() == 1
    successors = [args[0] for func, args, _ in queued[1:] if func == queueing.FEED_POLLER_TASK]
    assert len(successors) == 1 and successors[0] != token
    assert FeedPollerSlot.objects.get().lease_owner == successors[0]  # held for the successor: no gap, no second poller


def test_a_poller_the_broker_refused_leaves_its_slot_free_for_the_next_start(account, poll_settings, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("django_q.tasks.async_task", down)
    assert not start_poller()
    assert FeedPollerSlot.objects.get().lease_owner == ""  # not reserved for a task that does not exist
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: sent.append(func))
    assert start_poller() and sent == [queueing.FEED_POLLER_TASK]


@pytest.fixture
def cluster_stopping():
    """The cluster's stop flag, set as `manage.py qcluster` sets it on SIGINT or SIGTERM."""
    from integration import shutdown

    shutdown.prepare()
    shutdown.request()
    yield
    shutdown.prepare()  # a fresh flag, not set: the next test's cluster is running


def test_a_stopping_cluster_ends_the_poller_at_once_and_hands_over(account, vtex, poll_settings, queued, cluster_stopping):
    feed = FakeFeed(vtex)
    feed.add(feed_item("1-01"))
    finished = []
    poller = threading.Thread(target=lambda: finished.append(run_poller(run_seconds=3600)), daemon=True)
    poller.start()
    poller.join(60)  # a poller that ignored the stop would run its whole hour
    assert finished, "the poller went on although the cluster is stopping"
    [report] = finished
    assert report.turns == 0 and report.handed_over and feed.retrieve_calls == 0
    assert [func for func, _, _ in queued] == [queueing.FEED_POLLER_TASK]  # the successor, for the next start


def test_a_stopping_cluster_ends_a_turn_after_the_lot_in_hand(account, vtex, poll_settings, enqueued, cluster_stopping):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(35)])  # a backlog the turn would otherwise drain
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    summary, next_poll = run_feed_turn(account, "poller-test", Flow())
    assert summary.ok and (summary.batches, summary.committed) == (1, 10)
    assert next_poll == 0.0  # still a backlog: due at once when a cluster runs again
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 10


# --- Commits shared by several lots (FEED_COMMIT_BATCH, FEED_COMMIT_DELAY) ---

def test_a_backlog_is_committed_two_lots_to_a_call_and_the_poller_commits_the_rest_as_it_ends(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(45)])
    run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert len(feed.committed) == 45 and not feed.items
    assert feed.commit_calls == 3  # 20 + 20 + the 5 left at the end, not 5 commits
    # Five retrieves, and a sixth (empty) one when the flow's estimate makes the store due again
    # before the pass ends: the database's speed decides which (PostgreSQL is slower here).
    assert feed.retrieve_calls in (5, 6)
    assert FeedEvent.objects.filter(committed_at__isnull=True).count() == 0


def test_a_steady_flow_shares_one_commit_between_turns(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    flow = Flow()
    for turn in range(3):  # three short lots, each turn due again within a second
        feed.add(*[feed_item(f"{turn}{k}-01") for k in range(8)])
        Account.objects.filter(pk=account.pk).update(lease_owner="", lease_until=Now())
        take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
        summary, next_poll = run_feed_turn(account, "poller-test", flow, interval=1)
        assert summary.ok, summary.error
    # 8 and 8 waited (each turn due again within FEED_COMMIT_DELAY); the third lot reached 20.
    assert feed.retrieve_calls == 3 and feed.commit_calls == 1 and len(feed.committed) == 24
    assert not flow.pending and FeedEvent.objects.filter(committed_at__isnull=False).count() == 24


def test_handles_do_not_wait_past_the_delay(account, vtex, poll_settings, enqueued):
    poll_settings.FEED_COMMIT_DELAY = 0.5
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{k}-01") for k in range(8)])
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    summary, next_poll = run_feed_turn(account, "poller-test", Flow(), interval=1)  # next poll past the delay
    assert summary.ok and summary.committed == 8 and feed.commit_calls == 1


def test_a_short_visibility_timeout_gets_a_commit_every_lot(account, vtex, poll_settings, enqueued):
    account.feed_config.visibility_timeout = 10  # items come back after 10 s: no handle may wait
    account.feed_config.save()
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{k}-01") for k in range(28)])
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    flow = Flow()
    summary, _ = run_feed_turn(account, "poller-test", flow, interval=1)
    assert summary.ok and summary.committed == 28 and not flow.pending
    # 20 (two full retrieves stored as one lot) and 8: one commit a stored lot, within the turn and at its end
    assert feed.commit_calls == 2


def test_a_shared_commit_that_fails_loses_nothing(account, vtex, poll_settings, enqueued):
    feed = FakeFeed(vtex)
    feed.add(*[feed_item(f"{n}-01") for n in range(20)])
    feed.commit_failures = 1
    # The second full lot starts a read-ahead retrieve on its thread while the shared commit fails.
    # Were the failed commit's items offered again at once, that retrieve, answered after the
    # failure (a loaded host), would take 10 of them, never to be offered again by the fake: VTEX
    # offers them again only after the visibility timeout, so the retrieve in flight finds none.
    feed.hold_failed_commits = True
    take_lease(Account.objects.filter(pk=account.pk), "poller-test", 60)
    summary, _ = run_feed_turn(account, "poller-test", Flow())
    assert not summary.ok and "500" in summary.error
    assert FeedEvent.objects.count() == 20  # stored before the commit was tried
    assert FeedEvent.objects.filter(committed_at__isnull=False).count() == 0
    feed.expire_visibility()
    assert len(feed.items) == 20  # both lots offered again (VTEX: after the visibility timeout)
    Account.objects.filter(pk=account.pk).update(lease_owner="", lease_until=Now())
    run_poller(run_seconds=120, hand_over=False, until_idle=True)
    assert len(feed.committed) == 20 and FeedEvent.objects.count() == 20  # the second delivery: duplicates, committed
    assert FeedEvent.objects.filter(committed_at__isnull=True).count() == 0
