"""A real HTTP server on loopback that plays the retailer's ERP endpoint."""
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: bytes
    peer: tuple = ()  # the client's (host, port): one per TCP connection


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class FakeERP:
    """Answers per path (a list of Answers is consumed in order, the last one repeats)."""

    def __init__(self):
        self.requests: list[Recorded] = []
        self.routes: dict[str, list[Answer]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path="/hook"):
        return self.base + path

    def on(self, path, *answers):
        self.routes[path] = list(answers)

    def answer(self, status=200, body=b"", headers=None, delay=0.0):
        return Answer(status=status, body=body, headers=dict(headers or {}), delay=delay)

    def json_answer(self, status, data, **kw):
        return Answer(status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}, **kw)

    def _next_answer(self, path):
        with self.lock:
            answers = self.routes.get(path)
            if not answers:
                return Answer(404, b"no route")
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _handler_class(self):
        erp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with erp.lock:
                    erp.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body, self.client_address))
                answer = erp._next_answer(path)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = _handle

            def log_message(self, *args):
                pass

        return Handler

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def erp():
    server = FakeERP().start()
    yield server
    server.stop()


@pytest.fixture
def other_erp():
    """A second server: another origin (same host, different port)."""
    server = FakeERP().start()
    yield server
    server.stop()
