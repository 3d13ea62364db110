"""The dispatch lot's threads: kept by the process, not started per phase."""
import threading
import time

from integration.pipeline.dispatch import _in_threads


def test_the_lots_threads_are_kept_by_the_process_across_phases(settings):
    """Starting a phase's threads anew, three phases a lot, cost 5 % of the hub's CPU."""
    settings.DISPATCH_CONCURRENCY = 5

    def who(_):
        time.sleep(0.05)  # all five threads take part
        return threading.current_thread()  # the Thread objects are kept: a new thread is a new object

    first = _in_threads(who, range(5), 5)
    alive = set(threading.enumerate())
    again = _in_threads(who, range(5), 5)
    assert len(set(first)) == 5 and threading.current_thread() not in first
    assert len(set(again)) == 5 and set(again) <= alive  # no thread started for the second phase
