"""A per-store, per-route request cap shared by every worker, so the hub slows down instead of
drawing 429s. Counted in one-second windows: in Redis when REDIS_URL is set (shared by every
machine), otherwise in this process (the SQLite set-up runs on one host)."""
import threading
import time

from django.conf import settings

_local_lock = threading.Lock()
_local_counts: dict[tuple, int] = {}
_redis = None


def cap_per_minute(route):
    return settings.VTEX_RATE_LIMITS.get(route, settings.VTEX_RATE_LIMITS.get("*"))


def _redis_client():
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    return _redis


def _take(key, limit):
    if settings.REDIS_URL:
        client = _redis_client()
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 3)
        count = pipe.execute()[0]
        return count <= limit
    with _local_lock:
        now_window = key[-1]
        for stale in [k for k in _local_counts if k[-1] < now_window - 2]:
            del _local_counts[stale]
        count = _local_counts.get(key, 0) + 1
        _local_counts[key] = count
        return count <= limit


def wait_for_slot(account_id, route, max_wait=30.0):
    cap = cap_per_minute(route)
    if not cap:
        return
    per_second = max(1, cap // 60)
    deadline = time.monotonic() + max_wait
    while True:
        window = int(time.time())
        key = (f"vtexhub:rl:{account_id}:{route}:{window}" if settings.REDIS_URL else (account_id, route, window))
        if _take(key, per_second) or time.monotonic() > deadline:
            return
        time.sleep(max(0.01, window + 1 - time.time()))
