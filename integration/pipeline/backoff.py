"""The retry schedule of syncs and start-handling: a list of delays with jitter."""
import random

from django.conf import settings


def delay_after(attempts, schedule=None, jitter=None):
    """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
    schedule = schedule or settings.SYNC_BACKOFF_SECONDS
    jitter = settings.SYNC_BACKOFF_JITTER if jitter is None else jitter
    base = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return max(1, round(base * (1 + random.uniform(-jitter, jitter))))
