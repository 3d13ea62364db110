"""Idle connections kept between deliveries, for adapters whose connection is worth reusing.

The dispatcher builds one adapter per delivery and calls `close()` after it. An adapter whose
connection is expensive to open (an AMQP or SSH handshake, a login) hands it to a pool in
`close()` and takes it back in its next instance, so a dispatch batch reuses one connection per
worker thread instead of opening one per order. The pool is process-wide and thread-safe; a
connection is only ever used by one adapter at a time.
"""
import atexit
import threading
import time
from typing import Callable


class ConnectionPool:
    def __init__(self, *, close: Callable[[object], None], is_usable: Callable[[object], bool], limit_per_key: int = 8):
        self._close = close  # must not raise
        self._is_usable = is_usable  # a cheap liveness check; may raise (treated as unusable)
        self._limit = limit_per_key
        self._lock = threading.Lock()
        self._idle: dict[object, list] = {}
        atexit.register(self.close_all)

    def take(self, key, max_idle: float):
        """The most recently returned usable connection for `key` idle at most `max_idle` seconds, or None."""
        while True:
            with self._lock:
                entries = self._idle.get(key)
                if not entries:
                    return None
                item, since = entries.pop()
            if time.monotonic() - since <= max_idle:
                try:
                    usable = self._is_usable(item)
                except Exception:
                    usable = False
                if usable:
                    return item
            self._close(item)

    def give(self, key, item):
        """Keep `item` for the next adapter with the same key (or close it when the pool is full)."""
        try:
            usable = self._is_usable(item)
        except Exception:
            usable = False
        if usable:
            with self._lock:
                entries = self._idle.setdefault(key, [])
                if len(entries) < self._limit:
                    entries.append((item, time.monotonic()))
                    return
        self._close(item)

    def close_all(self):
        with self._lock:
            items = [item for entries in self._idle.values() for item, _ in entries]
            self._idle.clear()
        for item in items:
            self._close(item)

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(entries) for entries in self._idle.values())
