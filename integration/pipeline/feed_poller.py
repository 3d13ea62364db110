"""The feed poller: one django-q2 task polls every feed-mode store, each as soon as it is due.

A store is due when its lease is free: the poller releases it after a turn with `lease_until`
set to its next poll (at once after a full lot, FEED_POLL_INTERVAL after an empty feed; see
`feed_cycle.run_feed_turn`). So the store's lease says both "someone polls it now" and "not
before then", for every poller on every cluster, and two pollers never poll one store at once.

One poller runs FEED_CYCLE_BUDGET seconds on one worker, polling up to FEED_POLLER_THREADS
stores at a time on threads (the work waits on VTEX, not on the CPU), then hands its slot to a
successor it enqueues. However many stores there are, polling takes one worker per poller, and
at most FEED_POLLERS pollers run at once (`FeedPollerSlot`): the rest of the cluster is for
dispatch. Whatever starts a poller (a worker spawning as the cluster starts, the minute
schedule, the hand-over) goes through `start_poller`, which enqueues one only into a free slot.
"""
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F, Q
from django.db.models.functions import Now

from integration import queueing, shutdown
from integration.models import Account, FeedPollerSlot
from integration.pipeline.feed_cycle import Flow, commit_waiting, feed_accounts, run_feed_turn
from integration.pipeline.leases import new_owner_id, renew_lease, take_lease
from integration.redaction import redact

log = logging.getLogger(__name__)
# A poller renews its slot every tick; a poller that died (SIGKILL) frees it after SLOT_TTL.
SLOT_TTL = 20
# A slot reserved for a queued poller waits this long for it to start; then the next start
# (the minute schedule) may enqueue another.
RESERVATION_TTL = 90
TICK = 0.5  # how often the poller looks for due stores (at once when a turn ends)
RENEW_EVERY = 5  # seconds between renewals of the slot (not every tick: a write each)


@dataclass
class PollerReport:
    skipped: str = ""
    turns: int = 0
    stores: set = field(default_factory=set)
    fetched: int = 0
    new: int = 0
    failed: int = 0
    handed_over: bool = False

    def line(self):
        if self.skipped:
            return f"feed poller: skipped ({self.skipped})"
        return (f"feed poller: {self.turns} turns over {len(self.stores)} stores, fetched {self.fetched}, new {self.new}, "
                f"{self.failed} failed turns" + ("; handed over to its successor" if self.handed_over else ""))


def _ensure_slots():
    wanted = max(1, settings.FEED_POLLERS)
    if FeedPollerSlot.objects.filter(slot__lt=wanted).count() < wanted:
        FeedPollerSlot.objects.bulk_create([FeedPollerSlot(slot=n) for n in range(wanted)], ignore_conflicts=True)
    return FeedPollerSlot.objects.filter(slot__lt=wanted)


def _free(queryset):
    return queryset.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=Now()))


def _take_one_slot(owner, ttl, *, token=""):
    """Take the slot reserved for `token`, else any free slot; returns its pk or None."""
    slots = _ensure_slots()
    if token and slots.filter(lease_owner=token).update(lease_owner=owner, lease_until=Now() + timedelta(seconds=ttl)):
        return slots.get(lease_owner=owner).pk
    for pk in _free(slots).order_by("slot").values_list("pk", flat=True):
        if take_lease(_free(slots.filter(pk=pk)), owner, ttl):
            return pk
    return None


def start_poller():
    """Enqueue a poller if a slot is free (and reserve the slot for it); True when one was.

    Called as each worker of a cluster starts (the first poll runs within seconds of the
    cluster's start, not at the schedule's first minute), by the minute schedule (a poller
    lost with its broker or its worker is replaced) and by `runhub`."""
    token = f"queued-{uuid.uuid4().hex[:16]}"
    slot = _take_one_slot(token, RESERVATION_TTL)
    if slot is None:
        return False
    if not queueing.enqueue_feed_poller(token):  # the broker is down: the next start tries again
        _release(FeedPollerSlot.objects.filter(pk=slot), token)
        return False
    return True


def run_poller(token="", *, run_seconds=None, threads=None, hand_over=True, tick=TICK, until_idle=False):
    """Poll the feed-mode stores that are due for `run_seconds`, then hand over (see the module).

    `until_idle`: end earlier, as soon as no store is due and no turn is under way (a single
    pass over the stores, for a command or a test)."""
    run_seconds = settings.FEED_CYCLE_BUDGET if run_seconds is None else run_seconds
    threads = max(1, settings.FEED_POLLER_THREADS if threads is None else threads)
    report = PollerReport()
    owner = new_owner_id("poller")
    slot = _take_one_slot(owner, SLOT_TTL, token=token)
    if slot is None:
        report.skipped = "every feed poller slot is taken"
        return report
    slot_lease = FeedPollerSlot.objects.filter(pk=slot)
    turns = _Turns(threads, owner)
    # When the stores this poller turned are due again (monotonic): it wakes then, not at the
    # next tick, so a store following a flow is polled when its lot has arrived. Stores turned
    # by another poller are noticed at the tick.
    due = {}
    started = renewed = time.monotonic()
    try:
        while True:
            if time.monotonic() - renewed >= RENEW_EVERY:
                if not _renew_slot(slot_lease, owner):
                    log.warning("the feed poller lost its slot (it stalled past %s s); ending", SLOT_TTL)
                    hand_over = False
                    break
                renewed = time.monotonic()
            if time.monotonic() - started >= run_seconds:
                break
            if shutdown.requested():  # the cluster stops: hand over now (the successor waits in the broker)
                log.info("feed poller: the cluster is stopping; handing over after the turns under way")
                break
            try:
                claimed = _claim_due_stores(owner, threads - turns.busy)
            except DatabaseError as exc:  # a PostgreSQL restart: the turns fail and say so; the poller goes on
                log.warning("feed poller: could not look for due stores (%s); trying again", redact(str(exc))[:300])
                connection.close()
                claimed = []
                time.sleep(1.0)
            for account in claimed:
                due.pop(account.pk, None)
                turns.submit(account)
            if until_idle and not claimed and not turns.busy:
                break
            for result in turns.collect(timeout=_wait(due, tick)):
                _count(report, result, due)
    finally:
        # The turns under way finish (each bounded by FEED_TURN_BUDGET and the HTTP timeouts);
        # the slot is renewed meanwhile so that no successor starts beside this poller.
        while turns.busy:
            if time.monotonic() - renewed >= RENEW_EVERY:
                _renew_slot(slot_lease, owner)
                renewed = time.monotonic()
            for result in turns.collect(timeout=tick):
                _count(report, result, due)
        turns.close()
        for retry in (False, True):
            try:
                report.handed_over = _hand_over(slot_lease, owner) if hand_over else _release(slot_lease, owner)
                break
            except DatabaseError:
                if retry:  # the slot expires after SLOT_TTL; the minute schedule starts the next poller
                    log.warning("feed poller: could not hand over (the database is unavailable)")
                    break
                connection.close()
                time.sleep(1.0)
    return report


def _renew_slot(slot_lease, owner):
    """False only when the slot is lost; the database being away for a moment is not that."""
    try:
        return renew_lease(slot_lease, owner, SLOT_TTL)
    except DatabaseError as exc:
        log.warning("feed poller: could not renew its slot (%s)", redact(str(exc))[:300])
        connection.close()
        return True


def _wait(due, tick):
    """Seconds until the next store this poller knows of is due, within (0.05 s, tick)."""
    now = time.monotonic()
    for pk in [pk for pk, at in due.items() if at < now - 1.0]:  # taken by another poller meanwhile
        del due[pk]
    if not due:
        return tick
    return min(tick, max(0.05, min(due.values()) - now))


def _count(report, result, due):
    account, summary, next_poll = result
    due[account.pk] = time.monotonic() + next_poll
    report.turns += 1
    report.stores.add(account.pk)
    if summary is None or not summary.ok:
        report.failed += 1
    else:
        report.fetched += summary.fetched
        report.new += summary.new


def _claim_due_stores(owner, limit):
    """Take the leases of up to `limit` due stores, longest due first; returns the stores taken."""
    if limit <= 0:
        return []
    due = _free(feed_accounts()).order_by(F("lease_until").asc(nulls_first=True), "pk")
    ids = list(due.values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    # The same condition again in the UPDATE: another poller may have taken one meanwhile.
    take_lease(Account.objects.filter(pk__in=ids), owner, settings.FEED_LEASE_TTL)
    return list(Account.objects.filter(pk__in=ids, lease_owner=owner))


def _hand_over(slot_lease, owner):
    """Keep the slot for the successor (no gap, and no other start takes it meanwhile)."""
    if settings.Q_CLUSTER.get("sync"):  # tasks run inline: a successor would never return
        return _release(slot_lease, owner)
    token = f"queued-{uuid.uuid4().hex[:16]}"
    if not slot_lease.filter(lease_owner=owner).update(lease_owner=token, lease_until=Now() + timedelta(seconds=RESERVATION_TTL)):
        return False
    if not queueing.enqueue_feed_poller(token):  # the broker is down: the minute schedule starts the next one
        return _release(slot_lease, token)
    return True


def _release(slot_lease, owner):
    slot_lease.filter(lease_owner=owner).update(lease_owner="", lease_until=None)
    return False


class _Turns:
    """Stores' turns on up to `threads` threads; each thread keeps one database connection for
    all the turns it runs and closes it when the poller ends."""

    def __init__(self, threads, owner):
        self.size, self.owner = threads, owner
        self.todo, self.done = queue.Queue(), queue.Queue()
        self.busy = 0
        self.flows = {}  # account pk -> Flow, touched by one thread at a time (the store's lease)
        self.accounts = {}
        self.threads = []

    def submit(self, account):
        self.accounts[account.pk] = account
        self.busy += 1
        if len(self.threads) < min(self.size, self.busy):
            thread = threading.Thread(target=self._work, name=f"feed-poller-{len(self.threads)}", daemon=True)
            thread.start()
            self.threads.append(thread)
        self.todo.put(account)

    def collect(self, timeout):
        results = []
        try:
            results.append(self.done.get(timeout=timeout))
            while True:
                results.append(self.done.get_nowait())
        except queue.Empty:
            pass
        self.busy -= len(results)
        return results

    def close(self):
        for _ in self.threads:
            self.todo.put(None)
        for thread in self.threads:
            thread.join()
        # Handles the last turns left waiting for a shared commit: committed now, not lost with the
        # flows (VTEX would offer their items again after the visibility timeout, as duplicates).
        for pk, flow in self.flows.items():
            commit_waiting(self.accounts[pk], flow.pending)

    def _work(self):
        try:
            while True:
                account = self.todo.get()
                if account is None:
                    return
                flow = self.flows.setdefault(account.pk, Flow())
                try:
                    summary, next_poll = run_feed_turn(account, self.owner, flow)
                except Exception as exc:  # run_feed_turn records its own failures; this is a bug: go on
                    log.error("feed poller: turn of store=%s failed: %s", account.account_name, redact(f"{type(exc).__name__}: {exc}"))
                    summary, next_poll = None, settings.FEED_POLL_INTERVAL
                self.done.put((account, summary, next_poll))
        finally:
            connection.close()
