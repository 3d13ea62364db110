"""HTTP sessions kept alive across deliveries, for adapters that speak HTTP.

The dispatcher builds one adapter per delivery. An adapter that opened its own
`requests.Session` each time paid a new TCP (and TLS) handshake per order, plus requests'
per-call scan of the environment and ~/.netrc. `http_session(key)` returns one session per key
and process instead, shared by the dispatcher's threads: its connection pool is thread-safe and
keeps connections alive between orders and between dispatch lots.

What a shared session must not carry from one delivery to the next is switched off: it accepts
no cookies, and it reads the environment (proxies, CA bundle) once, when it is made. Set
headers, authentication and timeouts per request, never on the session.

The session is a `requests.Session` (an `integration.lean_session.LeanSession`): a call with a
bytes body, fixed headers and `allow_redirects=False` skips requests' per-call preparation
(a third of the client's CPU); any other call is requests' own.
"""
import threading

import requests
from django.conf import settings

from integration.lean_session import new_session

_lock = threading.Lock()
_sessions: dict = {}


def http_session(key, *, url=None, pool_size=None) -> requests.Session:
    """The process's session for `key` (any hashable: an adapter key and the endpoint's origin,
    say), made on first use with up to `pool_size` kept-alive connections per host (default: as
    many as a dispatch lot has threads, `DISPATCH_CONCURRENCY`; a smaller pool made the threads
    beyond it open a connection per delivery and throw it away). `url`: a URL
    the session will call, for the proxy settings of the environment. Never close it: it outlives
    the adapter."""
    session = _sessions.get(key)
    if session is None:
        if pool_size is None:
            pool_size = max(16, settings.DISPATCH_CONCURRENCY)
        with _lock:
            session = _sessions.get(key)
            if session is None:
                # No cookie from one delivery (or one binding) reaches the next.
                session = _sessions[key] = new_session(url, pool_size)
    return session


def close_http_sessions():
    """Close every kept session (tests; a process that forks)."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()
