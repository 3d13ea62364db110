"""Rate caps that learn: the cap (calls a minute) the hub keeps to on each store's VTEX route.

VTEX publishes a number only for get order (6,000 a minute per account); its other limits "vary
throughout the day and are not disclosed". So each store's route starts at VTEX_RATE_LIMITS,
and, like TCP's congestion window (slow start, additive increase, multiplicative decrease):

* while the route is **saturated** (calls queued for their slots: the cap, not the work, set the
  pace) and VTEX answers without a 429, the cap grows by VTEX_RATE_FAST_RAISE_PERCENT of itself
  (100: it doubles, as TCP's window doubles every round trip in slow start) after every
  VTEX_RATE_FAST_RAISE_SECONDS window that held at least a second's worth of calls at the cap, up
  to VTEX_RATE_CEILINGS ("slow start": a backlog reaches the ceiling in seconds instead of
  minutes). Not within FAST_RAISE_AFTER_CUT
  seconds of a 429: VTEX has just shown where its limit is, and the cap creeps towards it as below;
* otherwise, after every VTEX_RATE_RAISE_SECONDS (or more) in which the route used at least half
  its cap and VTEX answered without a 429, the cap goes up by VTEX_RATE_RAISE_PERCENT of the
  starting cap, up to VTEX_RATE_CEILINGS. An idle route is never raised: only a cap that was
  nearly used has been tried;
* a 429 halves it (never below a tenth of the starting cap), once per pause: 429s answering calls
  that were already on their way count once. The pause itself (Retry-After, for every worker) is
  the route guard's `RoutePause`;
* a cap an operator pins on the store's page is used as it is and never changed.

Why growing fast is safe: a raise needs VTEX to have accepted the current cap (a whole window of
used slots, or, saturated, calls sent back to back at the cap's pace beyond its second's burst;
no 429); the cap never passes the ceiling (VTEX's published 6,000 a minute for get
order, the operator's choice for the rest); a 429 still halves it and pauses the route for
Retry-After, so probing past VTEX's limit costs one pause, after which the cap grows only slowly.

The cap is a `RouteCap` row per store and route, shared by every worker and kept across
restarts. A process reads it at most every REFRESH_SECONDS per route and counts answers in
memory, adding them to the row at that moment: no query per call. A 429 is written at once.
"""
import logging
import math
import threading
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integration import ratelimit
from integration.models import RouteCap

log = logging.getLogger(__name__)
REFRESH_SECONDS = 3.0  # how stale a process's copy of a cap (and its unsaved answer count) may get
UTILISATION = 0.5  # share of the cap a window must have used for a raise
CUT_SETTLE_SECONDS = 5  # at least this long between two halvings (calls in flight answer late)
FAST_RAISE_AFTER_CUT = 900  # seconds after a 429 in which a saturated route still grows only additively
# Share of a process's calls that waited for their slot for the route to count as saturated (the
# cap set the pace). A call waits only when a second's worth of calls is already scheduled ahead of
# it; with dispatch lots of 50 a store's lots come in bursts, and a tenth of waiting calls there
# meant lots waiting a second or more for start-handling (half was never reached by some stores).
SATURATED = 0.1

_lock = threading.Lock()
_cached = {}  # (store pk, route) -> (cap in force, monotonic time read)
_answers = {}  # (store pk, route) -> answers without a 429 not yet added to the row, in this process
_paced = {}  # (store pk, route) -> [calls, calls that waited for their slot] since the last sync, in this process


def start_cap(route):
    """The starting cap (VTEX_RATE_LIMITS); 0: the route has no cap and nothing is learned."""
    return ratelimit.cap_per_minute(route) or 0


def ceiling(route):
    start = start_cap(route)
    if not settings.VTEX_RATE_LEARN or not start:
        return start
    top = settings.VTEX_RATE_CEILINGS.get(route, settings.VTEX_RATE_CEILINGS.get("*")) or 0
    return max(start, top)


def floor(route):
    return max(1, math.ceil(start_cap(route) / 10))


def step(route):
    return max(1, start_cap(route) * settings.VTEX_RATE_RAISE_PERCENT // 100)


def fast_step(cap):
    """How much a saturated route's cap grows in one window (0: never fast)."""
    return cap * max(0, settings.VTEX_RATE_FAST_RAISE_PERCENT) // 100


def learns(route):
    return bool(settings.VTEX_RATE_LEARN and start_cap(route))


def highest_caps():
    """The most calls a minute any store's route may reach without a pin, in VTEX_RATE_LIMITS's
    shape (route -> cap, "*" for the rest): the ceilings, or the starting caps when nothing is learned."""
    routes = set(settings.VTEX_RATE_LIMITS) | set(settings.VTEX_RATE_CEILINGS)
    return {route: ceiling(route) for route in routes}


def in_force(row):
    """The cap a row stands for now: the pin, else the learned cap within today's floor and ceiling."""
    if row.pinned_cap is not None:
        return row.pinned_cap
    if not learns(row.route):
        return start_cap(row.route)
    return min(ceiling(row.route), max(floor(row.route), row.learned_cap))


def _row(account_id, route):
    row = RouteCap.objects.filter(account_id=account_id, route=route).first()
    if row is None:
        now = timezone.now()
        try:
            with transaction.atomic():
                row = RouteCap.objects.create(account_id=account_id, route=route, learned_cap=start_cap(route), changed_at=now,
                                              change_reason="starting cap (VTEX_RATE_LIMITS)", window_started_at=now)
        except IntegrityError:  # another worker created it first
            row = RouteCap.objects.get(account_id=account_id, route=route)
    return row


def cap(account_id, route, max_age=REFRESH_SECONDS):
    """The cap in force for this store's route: from this process's copy, read again every
    REFRESH_SECONDS (`max_age`: sooner)."""
    key = (account_id, route)
    with _lock:
        entry = _cached.get(key)
        now = time.monotonic()
        if entry is not None and now - entry[1] < max_age:
            return entry[0]
        if entry is not None:  # the other threads keep using the copy while this one reads the row
            _cached[key] = (entry[0], now)
    return sync(account_id, route)


def sync(account_id, route):
    """Add this process's answer count to the route's row (raising the cap when a window earned
    it) and read the cap in force again. Returns that cap."""
    key = (account_id, route)
    with _lock:
        answers = _answers.pop(key, 0)
        calls, waited = _paced.pop(key, (0, 0))
    row = _row(account_id, route)
    if answers and learns(route):
        _count(row, answers, saturated=calls > 0 and waited >= calls * SATURATED)
    current = in_force(row)
    with _lock:
        _cached[key] = (current, time.monotonic())
    return current


def _count(row, answers, saturated=False):
    """Add a process's answers to the route's window; close the window when it is over, raising
    the cap when it earned it. `saturated`: most of this process's calls since its last sync
    waited for their slot."""
    now = timezone.now()
    same = RouteCap.objects.filter(pk=row.pk)
    elapsed = (now - row.window_started_at).total_seconds()
    recently_cut = row.cut_at is not None and (now - row.cut_at).total_seconds() < FAST_RAISE_AFTER_CUT
    fast = saturated and not recently_cut and fast_step(in_force(row)) > 0
    if fast and row.window_calls + answers < max(1, in_force(row) // 60):
        # Too few answers in the row yet to show a second at the cap: the other processes' counts
        # come with their next syncs. Closed now, the window began again empty, and a store's
        # start-handling waited for another whole window (7 s into a 4-store burst, not 4).
        fast = False
    if elapsed < (settings.VTEX_RATE_FAST_RAISE_SECONDS if fast else settings.VTEX_RATE_RAISE_SECONDS):
        same.update(window_calls=F("window_calls") + answers)
        return
    # The window is over: close it, and raise the cap when it was used and VTEX never said 429
    # (a 429 starts a new window).
    calls = row.window_calls + answers
    change = {"window_started_at": now, "window_calls": 0}
    old, top = in_force(row), ceiling(row.route)
    if fast:
        # Calls waited for their slot: the route has just run at its cap (the limiter lets a
        # second's worth go at once and spaces the rest), and VTEX accepted it. That is the
        # evidence, whatever the route did earlier in the window: averaged over a window opened
        # before a backlog arrived (an idle start, lots that come and go), the use looked low and
        # a store's start-handling stayed at its starting cap for a whole 4-store burst.
        used = calls >= max(1, old // 60)
    else:
        used = calls >= math.ceil(old / 60 * elapsed * UTILISATION)
    if row.pinned_cap is None and old < top and used:
        if fast:
            new, how = min(top, old + max(step(row.route), fast_step(old))), "calls queued for the cap, "
        else:
            new, how = min(top, old + step(row.route)), ""
        change.update(learned_cap=new, changed_at=now,
                      change_reason=f"raised {old:,} → {new:,}/min: {how}{calls:,} answers without a 429 in {elapsed:.0f} s")
    if same.filter(window_started_at=row.window_started_at).update(**change):
        if "learned_cap" in change:
            row.learned_cap = change["learned_cap"]
            log.info("store=%s route=%s rate cap %s", row.account_id, row.route, change["change_reason"])
    else:  # another process closed the window first: these answers count in the new one
        same.update(window_calls=F("window_calls") + answers)


def paced(account_id, route, wait):
    """Count one call that took its slot, and whether it had to wait for it (`wait` seconds > 0):
    calls that wait show the cap, not the work, setting the route's pace."""
    if settings.VTEX_RATE_LEARN:
        key = (account_id, route)
        with _lock:
            entry = _paced.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += wait > 0


def answered(account_id, route, code):
    """Count one answer of VTEX's (a status code, or "network"). Only answers below 500 other
    than 429 show the route coping; a 429 is reported through `rate_limited`."""
    if isinstance(code, int) and code < 500 and code != 429 and settings.VTEX_RATE_LEARN:
        key = (account_id, route)
        with _lock:
            _answers[key] = _answers.get(key, 0) + 1


def rate_limited(account_id, route, retry_after):
    """VTEX answered 429 on this store's route (the caller pauses the route for `retry_after`
    seconds): halve the learned cap, unless it was halved moments ago or is pinned."""
    key = (account_id, route)
    ratelimit.forget_slots(account_id, route)
    with _lock:
        _answers.pop(key, None)
        _paced.pop(key, None)
    row = _row(account_id, route)
    now = timezone.now()
    same = RouteCap.objects.filter(pk=row.pk)
    if row.pinned_cap is None and learns(route):
        if row.cut_at is None or (now - row.cut_at).total_seconds() >= max(CUT_SETTLE_SECONDS, retry_after):
            old = in_force(row)
            new = max(floor(route), old // 2)
            reason = f"halved {old:,} → {new:,}/min: 429 from VTEX (Retry-After {retry_after} s)"
            if same.filter(learned_cap=row.learned_cap).update(learned_cap=new, changed_at=now, change_reason=reason, cut_at=now,
                                                               window_started_at=now, window_calls=0):
                row.learned_cap = new
                log.warning("store=%s route=%s rate cap %s", account_id, route, reason)
            else:  # another worker changed it in between: read what it did
                row = _row(account_id, route)
        else:
            same.update(window_started_at=now, window_calls=0)
    with _lock:
        _cached[key] = (in_force(row), time.monotonic())


def forget():
    """Drop this process's copies and counts (tests; a process that must read every cap afresh)."""
    with _lock:
        _cached.clear()
        _answers.clear()
        _paced.clear()
