"""A per-store, per-route request cap shared by every worker, so the hub slows down instead of
drawing 429s.

Each call takes the next free slot of its store and route and sleeps until it comes (a "generic
cell rate" scheduler): calls go out evenly spaced, a second's worth may go at once, and no
60-second window ever holds more than the cap. The schedule lives in Redis when REDIS_URL is set
(shared by every machine, Redis's clock), otherwise in a small file per store and route in
HUB_VAR_DIR guarded by a file lock (shared by every process of this host: a qcluster runs several
worker processes, and a count kept in each of them let the host as a whole go several times over
the cap). If that file cannot be used, the schedule is kept in this process.

Slots are reserved in chunks: a process takes several consecutive slots from the shared schedule
at once (one Redis round trip or one file lock) and hands them to its calls from memory, so a
call under the cap costs no system call. A reserved slot may be used from `tolerance` before it
until LATE_USE_SECONDS after it, never later: an unused slot is dropped, not kept for a burst. The
chunk doubles while a process uses its slots up promptly and halves when slots go unused, so a
process that calls rarely reserves one slot at a time and wastes none of the others' cap.

Spacing: interval = (60 s + JITTER_SECONDS) / (cap - burst), burst = max(1, cap // 60), where
JITTER_SECONDS is a second of network lateness plus LATE_USE_SECONDS. Then any 60-second window
holds at most cap calls even when a call reaches VTEX up to JITTER_SECONDS after its slot:
(60 + JITTER_SECONDS) / interval + burst <= cap. When the cap changes (learned caps, see
`integration.pipeline.route_caps`) is raised, slots already reserved are used at the spacing they
were taken with; when it is cut, a process gives up the slots it reserved.
"""
import collections
import fcntl
import logging
import os
import struct
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)
NETWORK_SECONDS = 1.0  # a call may reach VTEX up to a second after it leaves
LATE_USE_SECONDS = 0.5  # a slot of a process's chunk is used at most this long after it comes
JITTER_SECONDS = NETWORK_SECONDS + LATE_USE_SECONDS
_lock = threading.Lock()
_schedule: dict[tuple, float] = {}   # in-process fallback: (store, route) -> next free slot (epoch s)
_files: dict[tuple, int] = {}        # (directory, store, route) -> open file descriptor
_allotments: dict[tuple, "_Allotment"] = {}  # (schedule's home, store, route) -> this process's reserved slots
_redis = None
_script = None
_booked_script = None

# KEYS[1] = schedule key; ARGV = interval, slots to reserve. Returns when the first reserved slot
# comes, in microseconds from Redis's now (0 when the schedule is idle).
_RESERVE_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + interval * count
redis.call('SET', KEYS[1], tostring(after), 'PX', math.ceil((after - now + 60) * 1000))
return math.floor((tat - now) * 1000000)
"""

# KEYS[1] = schedule key. Returns how far ahead of Redis's now the schedule is booked, in microseconds.
_BOOKED_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then return 0 end
return math.floor((tat - now) * 1000000)
"""


def cap_per_minute(route):
    return settings.VTEX_RATE_LIMITS.get(route, settings.VTEX_RATE_LIMITS.get("*"))


def spacing(cap):
    """(interval between calls in seconds, burst tolerance in seconds) for a cap per minute."""
    burst = max(1, cap // 60)
    interval = (60.0 + JITTER_SECONDS) / max(1, cap - burst)
    return interval, (burst - 1) * interval


def _reserve_local(tat, now, interval, count):
    """(new schedule value, when the first of `count` slots comes) on a schedule at `tat`."""
    first = max(tat, now)
    return first + count * interval, first


def _redis_client():
    global _redis, _script, _booked_script
    if _redis is None:
        import redis  # only when REDIS_URL is set: a host without Redis never loads the client

        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        _script = _redis.register_script(_RESERVE_LUA)
        _booked_script = _redis.register_script(_BOOKED_LUA)
    return _redis


def _reserve_redis(account_id, route, interval, count):
    _redis_client()
    return int(_script(keys=[f"vtexhub:rl:{account_id}:{route}"], args=[repr(interval), count])) / 1_000_000


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


def _stored_schedule(fd):
    """The next free slot (epoch s) a schedule file holds; 0 for a new file."""
    raw = os.pread(fd, 8, 0)
    return struct.unpack("<d", raw)[0] if len(raw) == 8 else 0.0


def _reserve_host(account_id, route, interval, count):
    """The schedule in a file shared by every process of this host (flock), else in this process."""
    with _lock:  # a flock is per open file, not per thread: threads of this process queue here
        try:
            fd = _schedule_file(account_id, route)
        except OSError as exc:
            log.warning("rate limit schedule file unusable (%s); limiting in this process only", exc)
            fd = None
        if fd is None:
            now = time.time()
            tat, first = _reserve_local(_schedule.get((account_id, route), 0.0), now, interval, count)
            _schedule[(account_id, route)] = tat
            return first - now
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = _stored_schedule(fd)
            now = time.time()
            tat, first = _reserve_local(current, now, interval, count)
            os.pwrite(fd, struct.pack("<d", tat), 0)
            return first - now
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)




def _booked_redis(account_id, route):
    _redis_client()
    return int(_booked_script(keys=[f"vtexhub:rl:{account_id}:{route}"])) / 1_000_000


def _booked_host(account_id, route):
    with _lock:
        try:
            fd = _schedule_file(account_id, route)
        except OSError:
            return max(0.0, _schedule.get((account_id, route), 0.0) - time.time())
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            return max(0.0, _stored_schedule(fd) - time.time())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def booked_ahead(account_id, route):
    """How many seconds of this store's route the shared schedule has already given out (slots
    reserved by every process, used or about to be): 0 when a call would go at once. A call waits
    only for what is booked beyond the cap's burst (`spacing(cap)[1]`). Never raises: the
    limiter unavailable reads as nothing booked."""
    try:
        return (_booked_redis if settings.REDIS_URL else _booked_host)(account_id, route)
    except Exception as exc:
        log.warning("rate limiter unavailable (%s: %s); its schedule reads as empty", type(exc).__name__, exc)
        return 0.0


class _Allotment:
    """The slots this process has reserved on one store's route, as monotonic times."""

    __slots__ = ("lock", "slots", "cap", "chunk", "refilled_at", "wasted")

    def __init__(self):
        self.lock = threading.Lock()
        self.slots = collections.deque()
        self.cap = None
        self.chunk = 1
        self.refilled_at = float("-inf")
        self.wasted = False

    def take(self, account_id, route, cap, reserve, max_wait=float("inf")):
        """The wait (seconds) before the next slot of this process's chunk; reserves a new chunk when
        empty. A slot more than `max_wait` away is kept for the next call of this process rather
        than taken: the caller does not call, and a slot given up was a call lost from the cap."""
        interval, tolerance = spacing(cap)
        with self.lock:
            now = time.monotonic()
            if cap != self.cap:  # a new cap: the chunk starts small
                if self.cap is not None and cap < self.cap:
                    self.slots.clear()  # spaced for the higher cap: too close together for this one
                # After a raise, the slots already reserved are used: spaced for the lower cap, they
                # are safe, and the shared schedule counts them (given up, every process's chunk
                # became a gap of up to a second that the calls after the raise waited through).
                self.cap, self.chunk, self.wasted = cap, 1, False
            slots = self.slots
            while slots and slots[0] + LATE_USE_SECONDS < now:
                slots.popleft()  # too late to use without crowding a later window: dropped
                self.wasted = True
            if not slots:
                if self.wasted:
                    self.chunk = max(1, self.chunk // 2)
                elif now - self.refilled_at < LATE_USE_SECONDS / 2:
                    self.chunk = min(self.chunk * 2, max(1, cap // 60))
                self.wasted = False
                offset = reserve(account_id, route, interval, self.chunk)
                self.refilled_at = now = time.monotonic()
                first = now + offset  # measured after the round trip: never earlier than the shared schedule's
                slots.extend(first + i * interval for i in range(self.chunk))
            wait = max(0.0, slots[0] - tolerance - now)
            if wait <= max_wait:
                slots.popleft()
        return wait

    def drop(self):
        with self.lock:
            self.slots.clear()
            self.chunk = 1


def _allotment(home, account_id, route):
    key = (home, account_id, route)
    allotment = _allotments.get(key)
    if allotment is None:
        with _lock:
            allotment = _allotments.setdefault(key, _Allotment())
    return allotment


def _home():
    """Where the shared schedule lives, and the function that reserves slots on it."""
    if settings.REDIS_URL:
        return ("redis", settings.REDIS_URL), _reserve_redis
    return ("host", str(settings.VAR_DIR)), _reserve_host


def forget_slots(account_id, route):
    """Give up this process's reserved slots of a route (VTEX said 429: they were spaced too tightly)."""
    home, _ = _home()
    allotment = _allotments.get((home, account_id, route))
    if allotment is not None:
        allotment.drop()


class QueueTooLong(Exception):
    """More calls are queued for this store's route than `max_wait` seconds of its cap: this one is
    not made. Calling early instead would put more than the cap into a minute (50 threads of three
    workers queueing on a cap of 120 a minute wait over a minute); the caller postpones the work."""

    def __init__(self, wait):
        super().__init__(f"{wait:.0f}s of calls queued for the rate cap")
        self.wait = wait


def wait_for_slot(account_id, route, max_wait=30.0, cap=None):
    """Take this store's next slot on this route and sleep until it comes; returns the wait.

    `cap`: calls a minute (the store's learned or pinned cap); None reads VTEX_RATE_LIMITS, 0 means
    no cap. Never sleeps longer than `max_wait`: with more queued than that, raises QueueTooLong
    rather than call early, and keeps the slot for this process's next call (a lot's fifty threads
    that each gave theirs up left a low cap a third unused)."""
    if cap is None:
        cap = cap_per_minute(route)
    if not cap:
        return 0.0
    home, reserve = _home()
    try:
        wait = _allotment(home, account_id, route).take(account_id, route, cap, reserve, max_wait)
    except Exception as exc:  # the limiter must never stop the hub: an outage of it means no pacing
        log.warning("rate limiter unavailable (%s: %s); calling without pacing", type(exc).__name__, exc)
        return 0.0
    if wait > max_wait:
        log.info("store=%s route=%s: %.0fs of calls queued for the rate cap; this call waits for later", account_id, route, wait)
        raise QueueTooLong(wait)
    if wait > 0:
        time.sleep(wait)
    return wait


def _forget_after_fork():
    # A forked worker must not share its parent's reserved slots, nor its schedule files (a flock
    # is held per open file, and a duplicated descriptor shares it with the parent).
    global _redis, _script, _booked_script, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _allotments.clear()
    for fd in _files.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _files.clear()
    _redis = _script = _booked_script = None


os.register_at_fork(after_in_child=_forget_after_fork)
