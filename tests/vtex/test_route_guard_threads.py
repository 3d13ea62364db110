"""A dispatch lot's HTTP threads and the database: one lookup at a time, no connection kept."""
import threading
import time

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from integration.models import RoutePause
from integration.pipeline import vtex_access
from integration.pipeline.vtex_access import DatabaseRouteGuard, http_only_thread

pytestmark = pytest.mark.django_db(transaction=True)  # the threads must see the test's rows


def _in_lot_threads(func, threads=20):
    """func() on `threads` threads released together, each marked as a lot's HTTP thread; returns
    (results, connections opened, connections still open when each thread finished)."""
    opened, left_open, results = [], [], []
    start = threading.Barrier(threads)

    def count(sender, connection, **kwargs):
        opened.append(threading.get_ident())

    def run():
        with http_only_thread():
            start.wait()
            results.append(func())
            left_open.append(connection.connection is not None)
        connection.close()

    connection_created.connect(count)
    try:
        workers = [threading.Thread(target=run) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
    finally:
        connection_created.disconnect(count)
    return results, opened, left_open


def test_a_stale_pause_check_is_looked_up_by_one_thread_and_its_connection_closed(account):
    guard = DatabaseRouteGuard(account.pk)
    vtex_access._pause_checked[(account.pk, "get_order")] = (time.monotonic() - 10, None)  # stale: due for a lookup
    results, opened, left_open = _in_lot_threads(lambda: guard.paused_until("get_order"))
    assert results == [None] * 20
    assert len(opened) == 1  # twenty threads, one lookup: the others used the last answer meanwhile
    assert not any(left_open)  # the thread that looked closed its connection at once


def test_a_pause_another_worker_recorded_is_found_by_the_lot_s_threads(account):
    guard = DatabaseRouteGuard(account.pk)
    vtex_access._pause_checked.pop((account.pk, "start_handling"), None)  # never looked up in this process
    RoutePause.pause(account.pk, "start_handling", 60, reason="429 from VTEX")
    results, opened, left_open = _in_lot_threads(lambda: guard.paused_until("start_handling"), threads=5)
    assert all(r is not None for r in results)  # never looked up: each thread looks, none calls VTEX
    assert not any(left_open)


def test_a_pause_the_worker_found_is_used_by_the_lot_s_threads(account):
    """The worker looks the route up before the phase and finds a pause (another worker's 429):
    the threads raise RoutePaused from that answer. Each looked it up again before, a connection
    each, for every lot of a paused store."""
    RoutePause.pause(account.pk, "get_order", 60, reason="429 from VTEX")
    vtex_access.look_up_routes(account.pk, ("get_order",))
    guard = DatabaseRouteGuard(account.pk)
    results, opened, left_open = _in_lot_threads(lambda: guard.paused_until("get_order"))
    assert len(results) == 20 and all(r is not None for r in results)
    assert opened == []
