"""The cluster's stop, as one flag every process of the cluster sees.

django-q2 stops a cluster by letting each worker finish the task it runs. That is right for a lot
of orders (seconds, and an order half-sent is worse than a late stop), but the feed poller runs
FEED_CYCLE_BUDGET seconds by design: the cluster would wait for it, and a supervisor's stop
timeout (`runhub` gives 8 s, systemd 90 s) would end in a kill. So `manage.py qcluster` creates
this flag before django-q2 forks (the sentinel and every worker inherit it) and sets it when the
cluster is told to stop; the poller stops claiming stores and a store's turn stops reading ahead
once the lot in hand is committed.

A process that is not a cluster (the web server, a command, a test) has no flag: never stopping.
"""
import multiprocessing

_flag = None


def prepare():
    """Create the flag; call it in the process that forks the cluster, before it forks."""
    global _flag
    if "fork" in multiprocessing.get_all_start_methods():  # shared by forked children only
        _flag = multiprocessing.get_context("fork").Event()
    return _flag


def request():
    """The cluster is stopping (called in the process that received the signal)."""
    if _flag is not None:
        _flag.set()


def requested():
    return _flag is not None and _flag.is_set()
