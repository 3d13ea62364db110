"""A per-store, per-route request cap shared by every worker, so the hub slows down instead of
drawing 429s.

Each call reserves the next free slot of its store and route and sleeps until it comes (a
"generic cell rate" scheduler): calls go out evenly spaced, a second's worth may go at once, and
no 60-second window ever holds more than the cap. The schedule lives in Redis when REDIS_URL is
set (shared by every machine, Redis's clock), otherwise in a small file per store and route in
HUB_VAR_DIR guarded by a file lock (shared by every process of this host: a qcluster runs several
worker processes, and a count kept in each of them let the host as a whole go several times over
the cap). If that file cannot be used, the schedule is kept in this process.

Spacing: interval = (60 s + 1 s of network jitter) / (cap - burst), burst = max(1, cap // 60).
Then any 60-second window holds at most cap calls even when a call reaches VTEX up to a second
late: (60 + 1) / interval + burst <= cap.
"""
import fcntl
import logging
import os
import struct
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)
JITTER_SECONDS = 1.0
_lock = threading.Lock()
_schedule: dict[tuple, float] = {}   # in-process fallback: (store, route) -> next free slot (epoch s)
_files: dict[tuple, int] = {}        # (directory, store, route) -> open file descriptor
_redis = None
_script = None

# KEYS[1] = schedule key; ARGV = interval, burst tolerance (s), longest wait (s). Returns the wait
# in microseconds, or -1 when the wait would be longer than allowed (nothing is reserved then).
_RESERVE_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval, tolerance, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > longest then return -1 end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((tat + interval - now + 60) * 1000))
return math.floor(wait * 1000000)
"""


def cap_per_minute(route):
    return settings.VTEX_RATE_LIMITS.get(route, settings.VTEX_RATE_LIMITS.get("*"))


def spacing(cap):
    """(interval between calls in seconds, burst tolerance in seconds) for a cap per minute."""
    burst = max(1, cap // 60)
    interval = (60.0 + JITTER_SECONDS) / max(1, cap - burst)
    return interval, (burst - 1) * interval


def _reserve_local(tat, now, interval, tolerance, longest):
    """(new schedule value, wait) for one call; wait None when it would exceed `longest`."""
    tat = max(tat, now)
    wait = max(0.0, tat - tolerance - now)
    if wait > longest:
        return None, None
    return tat + interval, wait


def _redis_client():
    global _redis, _script
    if _redis is None:
        import redis  # only when REDIS_URL is set: a host without Redis never loads the client

        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        _script = _redis.register_script(_RESERVE_LUA)
    return _redis


def _reserve_redis(account_id, route, interval, tolerance, longest):
    _redis_client()
    longest = min(longest, 1e9)
    result = int(_script(keys=[f"vtexhub:rl:{account_id}:{route}"], args=[repr(interval), repr(tolerance), repr(longest)]))
    return None if result < 0 else result / 1_000_000


def _schedule_file(account_id, route):
    directory = str(settings.VAR_DIR / "ratelimit")
    key = (directory, account_id, route)
    fd = _files.get(key)
    if fd is None:
        os.makedirs(directory, exist_ok=True)
        safe_route = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(route))
        fd = os.open(os.path.join(directory, f"{account_id}-{safe_route}"), os.O_RDWR | os.O_CREAT, 0o600)
        _files[key] = fd
    return fd


def _reserve_host(account_id, route, interval, tolerance, longest):
    """The schedule in a file shared by every process of this host (flock), else in this process."""
    with _lock:  # a flock is per open file, not per thread: threads of this process queue here
        try:
            fd = _schedule_file(account_id, route)
        except OSError as exc:
            log.warning("rate limit schedule file unusable (%s); limiting in this process only", exc)
            fd = None
        if fd is None:
            tat, wait = _reserve_local(_schedule.get((account_id, route), 0.0), time.time(), interval, tolerance, longest)
            if tat is not None:
                _schedule[(account_id, route)] = tat
            return wait
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, 8, 0)
            current = struct.unpack("<d", raw)[0] if len(raw) == 8 else 0.0
            tat, wait = _reserve_local(current, time.time(), interval, tolerance, longest)
            if tat is not None:
                os.pwrite(fd, struct.pack("<d", tat), 0)
            return wait
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def wait_for_slot(account_id, route, max_wait=30.0):
    """Reserve this store's next slot on this route and sleep until it comes; returns the wait.

    Never sleeps longer than `max_wait`: with more queued than that, the call goes out early (a
    429 then pauses the route for every worker)."""
    cap = cap_per_minute(route)
    if not cap:
        return 0.0
    interval, tolerance = spacing(cap)
    reserve = _reserve_redis if settings.REDIS_URL else _reserve_host
    try:
        wait = reserve(account_id, route, interval, tolerance, float("inf"))
    except Exception as exc:  # the limiter must never stop the hub: an outage of it means no pacing
        log.warning("rate limiter unavailable (%s: %s); calling without pacing", type(exc).__name__, exc)
        return 0.0
    if wait > max_wait:
        log.warning("store=%s route=%s: %.0fs of calls queued for the rate cap; calling after %ss", account_id, route, wait, max_wait)
        wait = max_wait
    if wait > 0:
        time.sleep(wait)
    return wait
