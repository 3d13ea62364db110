"""Kept-alive `http.client` connections: the transport of LeanSession's plain calls.

Under `requests`, a call goes through requests' HTTPAdapter, then urllib3's pool, then the
standard library's `http.client`, which does the sending and the parsing. Measured on this
project's 2-core machine (client CPU, loopback, keep-alive): a GET answered with 4 KB of JSON cost
1,140 us through LeanSession and requests' adapter, 860 us through urllib3's pool alone, 480 us on
an `http.client` connection; a POST answered 204 cost 375 against 130 us. HTTP was 29 % of the
hub's CPU per order, and the two layers above `http.client` more than half of it.

So LeanSession's plain calls (see `integration.lean_session`) are sent here, on connections of
`http.client` kept per origin, doing for them what urllib3 and requests' adapter would:

- up to `pool_size` idle connections per origin, shared by threads; one that its server has closed
  (or that holds bytes nobody asked for) is dropped before it is reused, and nothing is retried,
  as requests' adapter retries nothing (a POST that may have arrived is for the caller to judge);
- TLS verified against requests' CA bundle (certifi) or the session's `verify` path, the host
  name checked, SNI sent; TCP_NODELAY (set by `http.client` itself);
- the body decoded as urllib3 decodes it (gzip, deflate, and br or zstd when their libraries are
  installed), a streamed one a chunk at a time, at most `amt` bytes out of each step;
- errors raised as requests raises them: ConnectTimeout, ReadTimeout, SSLError, ConnectionError,
  ChunkedEncodingError, ContentDecodingError;
- the answer's headers as requests gives them (repeated ones joined with ", ").

A call this cannot send the same way (a proxy, a client certificate, `verify=False`, a timeout
object, an adapter the caller mounted or a test library patched, such as `responses`) is left to
requests' adapter by LeanSession.
"""
import http.client
import os
import select
import socket
import ssl
import threading
from urllib.parse import urlsplit

import requests
import urllib3
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3.response import HTTPResponse as _Urllib3Response
from urllib3.response import _get_decoder

_DEFAULT_PORTS = {"http": 80, "https": 443}
_URLLIB3_AGENT = f"python-urllib3/{urllib3.__version__}"
_CHUNK = 65536  # what a body is read by when it is read whole


class Unsupported(Exception):
    """The call cannot be sent here as requests would send it; nothing was sent."""


def _timeouts(timeout):
    """(connect, read) in seconds or None, as requests' adapter reads its `timeout` argument."""
    if timeout is None or isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return timeout, timeout
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return timeout
    raise Unsupported("timeout")  # a urllib3 Timeout object, say: requests' adapter knows it


def _decoder(headers):
    # As urllib3's HTTPResponse._init_decoder: only encodings it can decode; any other is left as sent.
    encoding = headers.get("content-encoding", "").lower()
    known = _Urllib3Response.CONTENT_DECODERS
    if encoding in known or ("," in encoding and any(e.strip() in known for e in encoding.split(","))):
        return _get_decoder(encoding)
    return None


class _Body:
    """The `raw` of a response: its body read from `http.client`, decoded. The connection goes
    back to the pool once the body has been read to its end; closed before, it is closed. (No
    `release_conn`: requests' `Response.close` calls it only where the raw response has one.)"""

    def __init__(self, pool, origin, conn, answer, decoder):
        self._pool, self._origin, self._conn, self._answer, self._decoder = pool, origin, conn, answer, decoder
        self._done = False

    def read(self, amt=None, decode_content=True):
        if amt is None:
            return b"".join(self.stream(_CHUNK))
        return next(self.stream(amt), b"")

    def stream(self, amt=_CHUNK, decode_content=True):
        """The body, a chunk of at most `amt` bytes at a time (requests' iter_content calls this)."""
        decoder = self._decoder
        while not self._done:
            if decoder is not None and decoder.has_unconsumed_tail:
                chunk = decoder.decompress(b"", max_length=amt)  # what a small step left of a big input
                if chunk:
                    yield chunk
                    continue
            data = self._receive(amt)
            if not data:
                missing = self._answer.length  # http.client's read(amt) ends quietly at an early EOF
                if missing:
                    self.close()
                    raise requests.exceptions.ChunkedEncodingError(
                        f"the connection closed with {missing} bytes of the body still expected")
                tail = self._decode(decoder.flush) if decoder is not None else b""
                self._finish()
                if tail:
                    yield tail
                return
            if decoder is not None:
                data = self._decode(decoder.decompress, data, max_length=amt)
            if data:
                yield data

    def _receive(self, amt):
        try:
            return self._answer.read(amt)
        except (TimeoutError, socket.timeout) as exc:
            self.close()
            raise requests.exceptions.ConnectionError(f"read timed out: {exc}") from None  # as requests' iter_content
        except http.client.IncompleteRead as exc:
            self.close()
            raise requests.exceptions.ChunkedEncodingError(
                f"the connection closed after {len(exc.partial)} bytes of the body, {exc.expected} more expected") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise requests.exceptions.ChunkedEncodingError(f"reading the body failed: {type(exc).__name__}: {exc}") from None

    def _decode(self, step, *args, **kwargs):
        try:
            return step(*args, **kwargs)
        except Exception as exc:  # zlib.error, brotli's and zstd's own
            self.close()
            raise requests.exceptions.ContentDecodingError(f"the body could not be decoded: {exc}") from None

    def _finish(self):
        if self._done:
            return
        self._done = True
        if self._answer.will_close:
            self._conn.close()  # "Connection: close", or a body that ends with the connection
        else:
            self._pool.give_back(self._origin, self._conn)

    def close(self):
        if not self._done:
            self._done = True
            self._answer.close()
            self._conn.close()  # a body not read to its end: the connection cannot carry another call

    @property
    def closed(self):
        return self._done


class _Answered:
    """What requests' cookie code reads of an answer: http.client's own response, as urllib3 keeps it."""

    def __init__(self, answer):
        self._original_response = answer


class ConnectionPool:
    """Idle connections per origin, for one session. Thread-safe: a connection is taken by one
    thread (list.pop is atomic) and given back when its answer has been read."""

    def __init__(self, pool_size):
        self.pool_size = max(1, int(pool_size))
        self._idle = {}
        self._contexts = {}
        self._lock = threading.Lock()

    def send(self, prepared, *, timeout, stream, verify):
        """Send `prepared` (method, URL, headers with Content-Length, bytes body or None) and return
        a `requests.Response`. Raises Unsupported before anything is sent if it cannot."""
        connect_timeout, read_timeout = _timeouts(timeout)
        url = prepared.url
        try:
            parts = urlsplit(url)
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
        except ValueError:
            raise Unsupported("url") from None  # a port that is not a number: requests says so its way
        if scheme not in _DEFAULT_PORTS or not host:
            raise Unsupported("url")
        port = port or _DEFAULT_PORTS[scheme]
        context = self._context(verify) if scheme == "https" else None
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        origin = (scheme, host, port, verify if scheme == "https" else None)

        conn = self._take(origin)
        if conn is None:
            conn = self._connect(scheme, host, port, context, connect_timeout)
        conn.sock.settimeout(read_timeout)
        headers = prepared.headers
        try:
            conn.putrequest(prepared.method, target, skip_host="Host" in headers, skip_accept_encoding=True)
            if "User-Agent" not in headers:
                conn.putheader("User-Agent", _URLLIB3_AGENT)  # as urllib3 does when none is set
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(prepared.body)
            answer = conn.getresponse()
        except (TimeoutError, socket.timeout) as exc:
            conn.close()
            raise requests.exceptions.ReadTimeout(f"{host}:{port}: read timed out (read timeout={read_timeout}): {exc}",
                                                  request=prepared) from None
        except ssl.SSLError as exc:
            conn.close()
            raise requests.exceptions.SSLError(f"{host}:{port}: {exc}", request=prepared) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise requests.exceptions.ConnectionError(f"{host}:{port}: connection aborted: {type(exc).__name__}: {exc}",
                                                      request=prepared) from None

        response = requests.Response()
        response.status_code = answer.status
        response.reason = answer.reason
        response.headers = CaseInsensitiveDict()
        for name, value in answer.getheaders():
            known = response.headers.get(name)
            response.headers[name] = value if known is None else f"{known}, {value}"  # as urllib3 joins them
        response.encoding = get_encoding_from_headers(response.headers)
        if "Set-Cookie" in response.headers:
            extract_cookies_to_jar(response.cookies, prepared, _Answered(answer))  # as requests' adapter
        response.url = url
        response.request = prepared
        response.raw = _Body(self, origin, conn, answer, _decoder(response.headers))
        if not stream:
            response._content = b"".join(response.raw.stream(_CHUNK))
            response._content_consumed = True
        return response

    def _take(self, origin):
        idle = self._idle.get(origin)
        while idle:
            try:
                conn = idle.pop()
            except IndexError:  # another thread took the last one
                return None
            if _reusable(conn):
                return conn
            conn.close()
        return None

    def give_back(self, origin, conn):
        idle = self._idle.get(origin)
        if idle is None:
            with self._lock:
                idle = self._idle.setdefault(origin, [])
        if len(idle) < self.pool_size:
            idle.append(conn)
        else:
            conn.close()

    def _connect(self, scheme, host, port, context, timeout):
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()  # TLS included: requests' connect timeout covers the handshake too
        except (TimeoutError, socket.timeout) as exc:
            conn.close()
            raise requests.exceptions.ConnectTimeout(f"{host}:{port}: connect timed out (connect timeout={timeout}): {exc}") from None
        except ssl.SSLError as exc:
            conn.close()
            raise requests.exceptions.SSLError(f"{host}:{port}: {exc}") from None
        except OSError as exc:
            conn.close()
            raise requests.exceptions.ConnectionError(f"{host}:{port}: could not connect: {type(exc).__name__}: {exc}") from None
        return conn

    def _context(self, verify):
        context = self._contexts.get(verify)
        if context is None:
            if verify is True:
                context = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
            elif isinstance(verify, str) and os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            elif isinstance(verify, str):
                context = ssl.create_default_context(cafile=verify)  # a missing file raises here, nothing sent
            else:
                raise Unsupported("verify")
            context.set_alpn_protocols(["http/1.1"])  # as urllib3 offers
            self._contexts[verify] = context
        return context

    def close(self):
        with self._lock:
            pools, self._idle = list(self._idle.values()), {}
        for idle in pools:
            for conn in idle:
                conn.close()


def _reusable(conn):
    """An idle connection can carry another call only if nothing is waiting to be read on it: a
    server that has closed it makes it readable (EOF), as does one that sent what nobody asked
    for. One poll, no wait (urllib3's is_connection_dropped does the same)."""
    sock = conn.sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)
