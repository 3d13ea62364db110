"""The feed cycle: retrieve, store (one transaction per batch), then commit every handle.

An item is stored before its handle is committed, so from then on our database, not VTEX's
four-day queue, is the record. If storing fails nothing is committed and VTEX re-delivers
after the visibility timeout; if the commit fails the next delivery is a duplicate and is
committed then.
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.db.models.functions import Now

from integration import queueing
from integration.pipeline import inbox
from integration.pipeline.leases import new_owner_id, release_lease, renew_lease, take_lease
from integration.models import Account
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
    if not take_lease(lease, owner, settings.FEED_LEASE_TTL):
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
            more_time = time.monotonic() - started < budget
            call = reader.started_at if reader.pending else time.monotonic()
            lot = _one_batch(account, client, summary, reader, read_ahead=more_time)
            if lot < MAXLOT:
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


def _release_and_record(lease, owner, account, summary):
    """Release the lease and record the outcome, even when the database is what failed.

    A PostgreSQL restart cuts every connection: the cycle fails on its broken one, and so would
    these last writes. Retry them once on a new connection; if the database is still away, say
    so in the log (the lease then expires by itself after FEED_LEASE_TTL).
    """
    for retry in (False, True):
        try:
            release_lease(lease, owner)
            _record(account, summary)
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
    short lot the next retrieve runs in order, as before (the feed is draining).
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


def _one_batch(account, client, summary, reader, read_ahead=True):
    """One retrieve-store-commit round. Returns how many items the retrieve brought (0: drained)."""
    items = reader.take() if reader.pending else client.retrieve_feed_items(MAXLOT)
    summary.batches += 1
    if not items:
        return False
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
    if read_ahead and len(items) >= MAXLOT:
        reader.start(client.retrieve_feed_items, MAXLOT)
    # Every handle is committed: duplicates and events no rule acts on included (VTEX: failing
    # to commit blocks the feed). Items without a handle cannot be committed, only kept.
    handles = [e.commit_handle or e.handle for e in incoming if e.commit_handle or e.handle]
    client.commit_handles(handles)
    summary.committed += len(handles)
    inbox.mark_committed(account, incoming)
    return len(items)


def _record(account, summary):
    fields = {
        "last_cycle_at": Now(),
        "last_cycle_ok": summary.ok,
        "last_cycle_error": summary.error,
        "last_cycle_summary": {k: v for k, v in asdict(summary).items() if k != "account"},
    }
    if summary.skipped:
        return
    if summary.ok:
        Account.objects.filter(pk=account.pk).update(consecutive_cycle_failures=0, **fields)
        log.info("feed cycle %s", summary.line())
    else:
        Account.objects.filter(pk=account.pk).update(consecutive_cycle_failures=F("consecutive_cycle_failures") + 1, **fields)
        log.warning("feed cycle %s", summary.line())
    notify("feed_cycle_finished", account=StoreInfo.of(account), summary=asdict(summary))


def feed_accounts():
    return Account.objects.filter(active=True, intake_mode__in=["feed", "both"])


def enqueue_feed_cycles():
    """Fan out one queued feed cycle per store that polls its feed; returns how many."""
    ids = list(feed_accounts().values_list("pk", flat=True))
    for pk in ids:
        queueing.enqueue_feed_cycle(pk)
    return len(ids)


def run_queued_feed_cycle(account_id):
    """The feed cycle of one store, as queued by `enqueue_feed_cycles`; returns its summary line."""
    account = Account.objects.filter(pk=account_id, active=True).first()
    if account is None:
        return "store gone or inactive"
    summary = run_feed_cycle(account)
    if summary.ok and not summary.skipped and not summary.drained:
        # The time budget ran out with the feed still full (a backlog): the next cycle starts
        # now instead of at the next minute of the schedule.
        queueing.enqueue_feed_cycle(account_id)
    return summary.line()
