"""Standard-library HTTP plumbing shared by the sandbox and the loopback ERP.

HTTP/1.1 with keep-alive and exact Content-Length so ``requests`` can pool connections; servers run
on a background thread; ``stop()`` also closes idle keep-alive connections.
"""
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("vtex_sandbox")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, owner):
        self.owner = owner
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stalls
    timeout = 120  # idle keep-alive connections are closed after this

    @property
    def owner(self):
        return self.server.owner

    def log_message(self, fmt, *args):
        log.debug("%s - %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        self._body = None
        try:
            self.handle_request(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox handler crashed on %s %s", method, self.path)
            try:
                self.send_json(500, {"error": {"code": "500", "message": "sandbox internal error", "exception": None}})
            except OSError:
                self.close_connection = True

    def handle_request(self, method):  # pragma: no cover - overridden
        raise NotImplementedError

    # --- request ----------------------------------------------------------------------
    def raw_body(self):
        if self._body is None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(chunks)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                self._body = self.rfile.read(length) if length > 0 else b""
        return self._body

    def json_body(self, default=None):
        """Parsed JSON body; ``default`` when empty; raises ValueError on malformed JSON."""
        raw = self.raw_body()
        if not raw.strip():
            return default
        return json.loads(raw.decode("utf-8"))

    # --- response ---------------------------------------------------------------------
    def send_json(self, status, payload, headers=None):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, data, "application/json; charset=utf-8", headers)

    def send_bytes(self, status, data, content_type=None, headers=None):
        self.raw_body()  # always drain the request so keep-alive stays in sync
        self.send_response(status)
        if content_type and status != 204:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        if status != 204 and data and hasattr(self, "_headers_buffer"):
            self._headers_buffer.append(b"\r\n" + data)  # one write for headers and body
            self.flush_headers()
            return
        self.end_headers()
        if status != 204 and data:
            self.wfile.write(data)

    def send_empty(self, status, headers=None):
        self.send_bytes(status, b"", None, headers)

    def drop(self):
        """Close the connection without sending any response."""
        self.raw_body()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class BackgroundServer:
    """A ThreadingHTTPServer on a daemon thread. ``start()`` returns self; ``url`` is known after start."""

    handler_class = JsonHandler

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self._httpd = None
        self._thread = None

    @property
    def url(self):
        if self._httpd is None:
            raise RuntimeError("server not started")
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self):
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self.port), self.handler_class, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"{type(self).__name__}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Run in the calling thread (management commands); returns after ``stop()`` or Ctrl-C."""
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self):
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        # Set the flag shutdown() sets, then wake the select() with a connection: stops in ~1 ms
        # instead of waiting for the poll interval.
        httpd._BaseServer__shutdown_request = True
        try:
            socket.create_connection(("127.0.0.1" if self.host in ("0.0.0.0", "") else self.host, self.port),
                                     timeout=0.5).close()
        except OSError:
            pass
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
