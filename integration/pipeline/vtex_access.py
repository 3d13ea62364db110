"""The VTEX client as the hub uses it: built from a store's row, with route pauses kept in the
database (seen by every worker), the shared per-route rate cap (learned from VTEX's answers,
`route_caps`) and per-process response counts."""
import contextlib
import math
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from integration import ratelimit
from integration.models import RoutePause
from integration.pipeline import route_caps
from integration.vtex import errors
from integration.vtex.client import VtexClient

_tokens = {}  # (store pk, ciphertext) -> app token: decrypt once per process, not per client


def _app_token(account):
    key = (account.pk, account.app_token_ciphertext, tuple(settings.HUB_ENCRYPTION_KEYS))
    token = _tokens.get(key)
    if token is None:
        token = _tokens[key] = account.app_token
    return token


_counts_lock = threading.Lock()
_response_counts = {}  # (store pk, route, status code or "network") -> n, in this process


def take_response_counts():
    """The counts since the last call (for flushing to the database)."""
    with _counts_lock:
        counts = dict(_response_counts)
        _response_counts.clear()
    return counts


# A route pause is looked up in the database at most once a second per process and route (a
# pause another worker records is seen within that second); a pause this process records is
# honoured at once. One thread looks it up; the others use the last answer meanwhile (fifty
# threads of a lot would otherwise all look it up at once), a pause found as well as none: each
# of a paused store's lots had its fifty threads look the pause up, a connection each.
PAUSE_CHECK_SECONDS = 1.0
_pause_checked = {}  # (store pk, route) -> (monotonic time of the last lookup, the pause's end or None)
_pause_lock = threading.Lock()
_http_thread = threading.local()


@contextlib.contextmanager
def http_only_thread():
    """Mark the current thread as one of a dispatch lot's HTTP threads: the rare statement its
    VTEX client makes (a route-pause lookup, a learned cap read, a 429 recorded) closes its
    connection at once, so a lot of fifty threads holds no more connections than the worker's
    own plus the lookup under way."""
    _http_thread.active = True
    try:
        yield
    finally:
        _http_thread.active = False


def _statement_done():
    if getattr(_http_thread, "active", False):
        connection.close()


class DatabaseRouteGuard:
    """`integration.vtex.client.RouteGuard` for one store: `RoutePause` rows, `ratelimit` at the
    store's learned (or pinned) cap, and what VTEX's answers teach `route_caps`."""

    def __init__(self, account_id):
        self.account_id = account_id

    def paused_until(self, route, max_age=PAUSE_CHECK_SECONDS):
        key = (self.account_id, route)
        with _pause_lock:
            checked = _pause_checked.get(key)
            if checked is not None:
                checked_at, until = checked
                if until is not None and until <= timezone.now():
                    until = None  # the pause it found is over
                if time.monotonic() - checked_at < max_age:
                    return until
                # Another thread uses the last answer while this one looks.
                _pause_checked[key] = (time.monotonic(), until)
        try:
            paused_until = RoutePause.active_until(self.account_id, route)
        finally:
            _statement_done()
        with _pause_lock:
            _pause_checked[key] = (time.monotonic(), paused_until)
        return paused_until

    def pause(self, route, seconds, reason, status=None):
        try:
            RoutePause.pause(self.account_id, route, seconds, reason=reason)
            with _pause_lock:
                _pause_checked.pop((self.account_id, route), None)
            if status == 429:
                route_caps.rate_limited(self.account_id, route, seconds)
        finally:
            _statement_done()

    def wait_for_slot(self, route):
        try:
            cap = route_caps.cap(self.account_id, route)
        finally:
            _statement_done()
        try:
            wait = ratelimit.wait_for_slot(self.account_id, route, cap=cap)
        except ratelimit.QueueTooLong as exc:
            # Not sent, like a call on a paused route: the caller postpones the work (a sync, a
            # start-handling, an update) by the queue's length instead of going over the cap.
            route_caps.paced(self.account_id, route, exc.wait)
            raise errors.RoutePaused(f"VTEX route {route}: {exc}; not sent", retry_after=max(1, math.ceil(exc.wait)), route=route) from None
        route_caps.paced(self.account_id, route, wait)

    def count_response(self, route, code):
        key = (self.account_id, route, str(code))
        with _counts_lock:
            _response_counts[key] = _response_counts.get(key, 0) + 1
        route_caps.answered(self.account_id, route, code)


def look_up_routes(account_id, routes):
    """Look up, on the calling thread, what a lot's HTTP threads are about to ask for these routes
    of the store: whether each is paused and its cap in force. The caller is a thread that keeps
    its connection (a dispatch worker's own); each answer is taken again once it is half its
    lifetime old, so the threads, which trust it for the whole of it, find it fresh for a phase
    of a lot instead of each lookup opening a connection and closing it (`http_only_thread`). On
    PostgreSQL a new connection is a server process started: a 4-store benchmark opened about 30
    a second that way, and the database server's CPU per order was nearly twice one store's."""
    guard = DatabaseRouteGuard(account_id)
    for route in routes:
        guard.paused_until(route, max_age=PAUSE_CHECK_SECONDS / 2)
        route_caps.cap(account_id, route, max_age=route_caps.REFRESH_SECONDS / 2)


def queue_wait(account_id, routes):
    """The longest a call of this store would wait now for its slot on any of these routes
    (seconds; 0: it would go at once): what every process has booked on the route's shared
    schedule beyond the cap's burst. A lot of a store whose cap is booked seconds ahead spends
    those seconds asleep on its worker; `dispatch_due` takes another store's lot first."""
    longest = 0.0
    for route in routes:
        cap = route_caps.cap(account_id, route)
        if cap:
            longest = max(longest, ratelimit.booked_ahead(account_id, route) - ratelimit.spacing(cap)[1])
    return longest


def client_for(account) -> VtexClient:
    """A VTEX client for this store (an `Account`), with the hub's settings."""
    return VtexClient(
        account.base_url, account.app_key, _app_token(account),
        guard=DatabaseRouteGuard(account.pk), pool_key=account.pk,
        timeout=(settings.VTEX_CONNECT_TIMEOUT, settings.VTEX_READ_TIMEOUT),
        pool_size=max(8, settings.DISPATCH_CONCURRENCY), default_retry_after=settings.VTEX_DEFAULT_RETRY_AFTER,
        name=account.account_name,
    )
