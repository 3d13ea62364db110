"""The feed cycle: retrieve, store (one transaction per batch), then commit every handle.

An item is stored before its handle is committed, so from then on our database, not VTEX's
four-day queue, is the record. If storing fails nothing is committed and VTEX re-delivers
after the visibility timeout; if the commit fails the next delivery is a duplicate and is
committed then.

The feed poller commits the handles of several lots at once (`PendingCommits`): VTEX takes many
handles in one commit, and a commit per lot is a tenth of a VTEX call an order. Stored first
still holds; a handle waits a few seconds at most, far under the visibility timeout, and one lost
with its poller is an item VTEX offers again and the inbox recognises as a duplicate.
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.db.models.functions import Now

from integration import shutdown
from integration.pipeline import inbox
from integration.pipeline.leases import new_owner_id, release_lease, renew_lease, take_lease
from integration.models import Account, FeedConfiguration
from integration.plugins.events import StoreInfo
from integration.plugins.manager import notify
from integration.redaction import redact
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for

log = logging.getLogger(__name__)
MAXLOT = 10
# Following a steady flow, the cycle waits at most this long for a lot to fill up; a thinner
# flow is left to the next scheduled cycle. A lot that would fill in less than FOLLOW_MIN_WAIT is
# the tail of a backlog, not a flow: there the first empty retrieve ends the cycle. Within a flow
# one empty retrieve is waited out (the orders are still coming); a second ends the cycle.
FOLLOW_WAIT_MAX = 10.0
FOLLOW_MIN_WAIT = 0.5
# The feed poller, following a flow, polls again when this share of a lot has probably arrived.
FLOW_FILL = 0.85


@dataclass
class CycleSummary:
    account: str
    ok: bool = True
    skipped: str = ""
    batches: int = 0
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    malformed: int = 0
    committed: int = 0
    error: str = ""
    seconds: float = 0.0
    drained: bool = False  # stopped at an empty retrieve (not at the time budget)

    def line(self):
        if self.skipped:
            return f"{self.account}: skipped ({self.skipped})"
        status = "ok" if self.ok else f"error: {self.error}"
        return (f"{self.account}: {status}; fetched {self.fetched}, new {self.new}, duplicate {self.duplicate}, "
                f"malformed {self.malformed}, committed {self.committed} in {self.batches} calls, {self.seconds:.1f}s")


def run_feed_cycle(account, *, budget=None, owner=None):
    owner = owner or new_owner_id("feed")
    budget = settings.FEED_CYCLE_BUDGET if budget is None else budget
    summary = CycleSummary(account=account.account_name)
    lease = Account.objects.filter(pk=account.pk)
    # A store the poller left waiting for its next poll (no owner, a lease_until ahead) is free
    # for an operator's cycle; one being polled now is not.
    ttl = timedelta(seconds=settings.FEED_LEASE_TTL)
    if not lease.filter(lease_owner="").update(lease_owner=owner, lease_until=Now() + ttl) \
            and not take_lease(lease, owner, settings.FEED_LEASE_TTL):
        summary.skipped = "another feed cycle holds this store's lease"
        return summary
    started = time.monotonic()
    reader = _ReadAhead()
    try:
        client = client_for(account)
        previous_call, rate, empties = None, None, 0
        while reader.pending or time.monotonic() - started < budget:
            if summary.batches and not renew_lease(lease, owner, settings.FEED_LEASE_TTL):
                summary.ok, summary.error = False, "lost the store's lease (the cycle ran past FEED_LEASE_TTL)"
                break
            # A stopping cluster: the lot in hand (and one read ahead) is committed, no other is retrieved.
            more_time = time.monotonic() - started < budget and not shutdown.requested()
            call = reader.started_at if reader.pending else time.monotonic()
            lot, full = _one_batch(account, client, summary, reader, read_ahead=more_time)
            if not full:
                # A short lot: orders are arriving, not queued. Retrieving again at once would
                # bring one or two per call (a retrieve and a commit each, ~3 VTEX calls an
                # order); wait until a full lot has probably arrived at the rate just seen.
                if lot and previous_call is not None:
                    rate = lot / max(call - previous_call, 1e-3)
                full_lot_in = MAXLOT / rate if rate else 0.0
                following = full_lot_in >= FOLLOW_MIN_WAIT  # a flow, not the tail of a backlog
                empties = empties + 1 if not lot else 0
                if not lot and (not following or empties > 1):
                    summary.drained = True  # the first empty retrieve ends the cycle, as ever
                    break
                if full_lot_in > FOLLOW_WAIT_MAX:
                    summary.drained = True  # a thin flow: the schedule's next cycle takes it
                    break
                if call + full_lot_in - started >= budget:
                    break
                time.sleep(max(0.0, call + full_lot_in - time.monotonic()))
            else:
                empties = 0
            previous_call = call
    except errors.NotFound:
        summary.ok = False
        summary.error = "VTEX has no feed configuration for this app key (404): push the feed configuration from the admin"
    except errors.VtexError as exc:
        summary.ok, summary.error = False, redact(str(exc))
    except Exception as exc:  # one store's failure must not stop the others
        log.exception("feed cycle failed for store=%s", account.account_name)
        summary.ok, summary.error = False, redact(f"{type(exc).__name__}: {exc}")
    finally:
        # A retrieve still in flight is left uncommitted: VTEX offers its items again after the
        # visibility timeout (as when storing fails).
        reader.close()
        summary.seconds = time.monotonic() - started
        _release_and_record(lease, owner, account, summary)
    return summary


def _release_and_record(lease, owner, account, summary, next_poll=None):
    """Release the lease and record the outcome, even when the database is what failed.

    A PostgreSQL restart cuts every connection: the cycle fails on its broken one, and so would
    these last writes. Retry them once on a new connection; if the database is still away, say
    so in the log (the lease then expires by itself after FEED_LEASE_TTL).

    With `next_poll` (seconds, the poller's turns) the lease is released into a wait: no owner,
    `lease_until` that far ahead, so no poller polls the store again before then; release and
    record are then one statement (an idle store is polled every few seconds).
    """
    for retry in (False, True):
        try:
            if next_poll is None:
                release_lease(lease, owner)
                _record(account, summary)
            else:
                _record(account, summary, lease=lease.filter(lease_owner=owner),
                        release={"lease_owner": "", "lease_until": Now() + timedelta(seconds=next_poll)})
            return
        except DatabaseError as exc:
            if retry:
                log.warning("feed cycle %s (not recorded, the database is unavailable: %s)", summary.line(), redact(str(exc)))
                return
            connection.close()
            time.sleep(1.0)


class _ReadAhead:
    """At most one retrieve in flight on a helper thread, started after a full lot.

    A full lot says more is waiting: the next retrieve then overlaps this batch's commit instead
    of following it, which nearly doubles intake against a feed 50 ms away. The batch is stored
    before the next retrieve starts and committed after, so store-then-commit holds. After a
    short lot the next retrieve runs in order, as before (the feed is draining). (The second lot
    of a pair, see `_one_batch`, is retrieved in order, before the pair is stored.)
    """

    def __init__(self):
        self.pending = None
        self.started_at = None
        self._pool = None

    def start(self, func, *args):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-read-ahead")
        self.started_at = time.monotonic()
        self.pending = self._pool.submit(func, *args)

    def take(self):
        future, self.pending = self.pending, None
        return future.result()

    def close(self):
        if self._pool is None:
            return
        if self.pending is not None:
            try:
                self.pending.result()
            except Exception:  # nothing of it was stored; VTEX redelivers it
                pass
            self.pending = None
        self._pool.submit(_close_connection).result()  # the helper thread's own, if it opened one
        self._pool.shutdown(wait=True)


def _close_connection():
    connection.close()


class PendingCommits:
    """Handles stored and not committed yet, for one store; see the module."""

    def __init__(self, batch=None, delay=None):
        self.batch = settings.FEED_COMMIT_BATCH if batch is None else batch
        self.delay = settings.FEED_COMMIT_DELAY if delay is None else delay
        self.handles, self.incoming, self.since = [], [], None

    def __len__(self):
        return len(self.handles)

    def add(self, handles, incoming):
        if self.since is None:
            self.since = time.monotonic()
        self.handles += handles
        self.incoming += incoming

    def due(self):
        return len(self.handles) >= self.batch or (self.since is not None and time.monotonic() - self.since >= self.delay)

    def flush(self, account, client, summary):
        """Commit every handle waiting (one call), then mark their events committed. A failed
        commit is not repeated: VTEX offers those items again, as after any failed commit."""
        handles, incoming = self.handles, self.incoming
        self.handles, self.incoming, self.since = [], [], None
        if handles:
            client.commit_handles(handles)
            summary.committed += len(handles)
        if incoming:
            inbox.mark_committed(account, incoming)


def _one_batch(account, client, summary, reader, read_ahead=True, pending=None):
    """One retrieve-store-commit round. Returns (how many items it stored, whether its last
    retrieve came full: a backlog). 0 items: the feed is drained.

    A full lot is a backlog's: one more lot is retrieved before storing, and the two are stored
    in one transaction. VTEX hands out ten items a retrieve, and a lot's fixed statements (the
    duplicate check, the store's rules and bindings, the enqueued dispatch) cost about what its
    ten items' rows cost: twenty a transaction took 520 against 760 us an item on SQLite and 920
    against 1,160 on PostgreSQL (docs/contributors/performance.md). If that second retrieve fails,
    the lot in hand is stored and its handles committed as usual (at once without `pending`; the
    poller commits what is waiting when a turn ends in an error), then the error ends the round.

    With `pending` (the poller's), the lot's handles join those waiting and are committed when
    `pending.due()`; without, at once."""
    items = reader.take() if reader.pending else client.retrieve_feed_items(MAXLOT)
    summary.batches += 1
    if not items:
        return 0, False
    full, failed = len(items) >= MAXLOT, None
    if full and read_ahead:
        summary.batches += 1
        try:
            more = client.retrieve_feed_items(MAXLOT)
        except errors.VtexError as exc:
            more, failed = [], exc
        full = len(more) >= MAXLOT
        items = items + more
    summary.fetched += len(items)
    incoming = [inbox.parse_feed_item(item) for item in items]
    try:
        stored = inbox.take_in(account, incoming)
    except Exception as exc:
        # Nothing is committed: VTEX offers these items again after the visibility timeout.
        raise RuntimeError(f"could not store {len(items)} feed items, none committed: {type(exc).__name__}: {exc}") from exc
    summary.new += stored.new
    summary.duplicate += stored.duplicate
    summary.malformed += stored.malformed
    if read_ahead and full and failed is None:
        reader.start(client.retrieve_feed_items, MAXLOT)
    # Every handle is committed: duplicates and events no rule acts on included (VTEX: failing
    # to commit blocks the feed). Items without a handle cannot be committed, only kept.
    handles = [e.commit_handle or e.handle for e in incoming if e.commit_handle or e.handle]
    pending = PendingCommits(batch=0) if pending is None else pending
    pending.add(handles, incoming)
    if pending.due():
        pending.flush(account, client, summary)
    if failed is not None:
        raise failed
    return len(items), full


def _record(account, summary, *, lease=None, release=None):
    fields = {
        "last_cycle_at": Now(),
        "last_cycle_ok": summary.ok,
        "last_cycle_error": summary.error,
        "last_cycle_summary": {k: v for k, v in asdict(summary).items() if k != "account"},
        **(release or {}),
    }
    if summary.skipped:
        return
    rows = Account.objects.filter(pk=account.pk) if lease is None else lease
    if summary.ok:
        rows.update(consecutive_cycle_failures=0, **fields)
    else:
        rows.update(consecutive_cycle_failures=F("consecutive_cycle_failures") + 1, **fields)
    # The poller polls an idle store every few seconds: its empty polls are neither logged at
    # INFO nor announced to observers, unless it is the first good one after failures (the
    # failure alert closes on it).
    quiet = release is not None and summary.ok and not summary.fetched and not account.consecutive_cycle_failures
    if quiet:
        log.debug("feed cycle %s", summary.line())
        return
    if summary.ok:
        log.info("feed cycle %s", summary.line())
    else:
        log.warning("feed cycle %s", summary.line())
    notify("feed_cycle_finished", account=StoreInfo.of(account), summary=asdict(summary))


def feed_accounts():
    return Account.objects.filter(active=True, intake_mode__in=["feed", "both"])


@dataclass
class Flow:
    """What one poller remembers of a store between its turns: when the last retrieve started
    and the arrival rate it saw, to poll again when a full lot has probably arrived."""
    previous_call: float = None
    rate: float = None
    # Stored handles waiting for a commit shared with the next lots (a turn ends with them only
    # when the store is due again within FEED_COMMIT_DELAY); the poller commits what is left as it ends.
    pending: PendingCommits = field(default_factory=PendingCommits)
    visibility_timeout: int = None  # the store's, read once per poller


def run_feed_turn(account, owner, flow, *, budget=None, interval=None):
    """One store's turn in the feed poller, under the store's lease (held by `owner`).

    Retrieve, store, commit while the lots come full (a backlog), for at most `budget` seconds;
    the first short or empty lot ends the turn (the feed is drained). The lease is then released
    into a wait: the store is due again at once after a full lot (a backlog, once the other
    stores had their turn), after `interval` seconds after an empty retrieve, after the time a
    full lot probably takes to arrive (at most `interval`) after a short one, and later and later
    after failures. Nothing sleeps here: the poller polls the stores that are due.
    Returns (summary, seconds until the next poll).
    """
    budget = settings.FEED_TURN_BUDGET if budget is None else budget
    interval = settings.FEED_POLL_INTERVAL if interval is None else interval
    summary = CycleSummary(account=account.account_name)
    lease = Account.objects.filter(pk=account.pk)
    started = time.monotonic()
    reader = _ReadAhead()
    next_poll = interval
    client = None
    try:
        client = client_for(account)
        pending = flow.pending if _may_share_commits(account, flow) else None
        while True:
            if summary.batches and not renew_lease(lease, owner, settings.FEED_LEASE_TTL):
                summary.ok, summary.error = False, "lost the store's lease (the turn ran past FEED_LEASE_TTL)"
                break
            # A stopping cluster: the lot in hand (and one read ahead) is committed, no other is retrieved.
            more_time = time.monotonic() - started < budget and not shutdown.requested()
            call = reader.started_at if reader.pending else time.monotonic()
            lot, full = _one_batch(account, client, summary, reader, read_ahead=more_time, pending=pending)
            if full:
                flow.previous_call = call
                if reader.pending or more_time:
                    continue
                next_poll = 0.0  # still a backlog: due again as soon as the other stores had a turn
                break
            summary.drained = True
            if lot and flow.previous_call is not None:
                seen = lot / max(call - flow.previous_call, 1e-3)
                flow.rate = seen if flow.rate is None else (flow.rate + seen) / 2  # smoothed: one lot is noisy
            if lot and flow.rate:
                # A short lot: orders are arriving, not queued. Polling again at once would bring
                # one or two per call; wait until most of a lot has probably arrived (at most the
                # interval, so an event waits in the feed no longer than after an empty poll).
                # Most, not all: a lot that comes exactly full is retrieved again at once (it
                # may be a backlog) and that retrieve brings one or two, two VTEX calls wasted.
                next_poll = min(interval, FLOW_FILL * MAXLOT / flow.rate) - (time.monotonic() - call)
            flow.previous_call = call
            break
    except errors.NotFound:
        summary.ok = False
        summary.error = "VTEX has no feed configuration for this app key (404): push the feed configuration from the admin"
    except errors.VtexError as exc:
        summary.ok, summary.error = False, redact(str(exc))
    except Exception as exc:  # one store's failure must not stop the others
        log.exception("feed poll failed for store=%s", account.account_name)
        summary.ok, summary.error = False, redact(f"{type(exc).__name__}: {exc}")
    finally:
        reader.close()
        summary.seconds = time.monotonic() - started
        if not summary.ok:
            # A failing store is polled less and less often (15 s, 30 s, then every minute), not
            # every few seconds: VTEX is spared, and ALERT_CYCLE_FAILURES in a row still mean a while.
            next_poll = min(60.0, max(interval, 15.0) * 2 ** min(account.consecutive_cycle_failures, 2))
        next_poll = max(0.0, next_poll)
        if flow.pending and not _keep_waiting(flow.pending, summary, next_poll):
            commit_waiting(account, flow.pending, summary, client)
        _release_and_record(lease, owner, account, summary, next_poll=next_poll)
    return summary, next_poll


def _may_share_commits(account, flow):
    """May handles wait for a shared commit at all? Only when the feed's visibility timeout (the
    hub's feed configuration, read once per poller) leaves ample room: a store another poller
    turns next keeps this poller's handles until this poller ends (within FEED_CYCLE_BUDGET and a
    turn), so the timeout must outlast that too. A shorter one gets a commit every lot."""
    if flow.visibility_timeout is None:
        config = FeedConfiguration.objects.filter(account_id=account.pk).values_list("visibility_timeout", flat=True)
        flow.visibility_timeout = config.first() or 0
    return flow.visibility_timeout >= max(4 * settings.FEED_COMMIT_DELAY, settings.FEED_CYCLE_BUDGET + 2 * settings.FEED_TURN_BUDGET)


def _keep_waiting(pending, summary, next_poll):
    """May the handles wait for the store's next turn? Only if it comes within FEED_COMMIT_DELAY
    and the oldest handle is not past it (and `_may_share_commits`, or none would be waiting)."""
    return (summary.ok and not pending.due() and not shutdown.requested()
            and next_poll + (time.monotonic() - pending.since) < pending.delay)


def commit_waiting(account, pending, summary=None, client=None):
    """Commit the handles waiting (at a turn's end, or the poller's); a failure is logged, not
    raised (VTEX offers the items again)."""
    count = len(pending)  # flush() empties it before calling VTEX
    if not count:
        return
    try:
        pending.flush(account, client or client_for(account), summary or CycleSummary(account=account.account_name))
    except Exception as exc:
        log.warning("feed: could not commit %d stored handles of store=%s (VTEX offers them again): %s",
                    count, account.account_name, redact(f"{type(exc).__name__}: {exc}"))


def run_queued_feed_cycle(account_id):
    """One store's feed cycle queued on its own (an operator's "Run feed cycle now"); returns its summary line."""
    account = Account.objects.filter(pk=account_id, active=True).first()
    if account is None:
        return "store gone or inactive"
    # One cycle, not a chain: what it leaves in the feed (a backlog past its budget) is the feed
    # poller's, which polls every store without holding a worker per store.
    return run_feed_cycle(account).line()
