"""LeanSession: the short path sends, byte for byte, what requests.Session sends, and anything it
does not cover goes through requests unchanged (a real loopback server records what arrives)."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
import requests
import responses

from integration.lean_session import LeanSession


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as VTEX and ERPs speak it

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()], body))
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "sid=abc; Path=/")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _sessions():
    plain, lean = requests.Session(), LeanSession()
    for session in (plain, lean):
        session.trust_env = False  # as the hub's sessions: the environment is read once, when made
    return plain, lean


HEADERS = {"Accept": "application/json", "Content-Type": "application/json", "X-VTEX-API-AppKey": "key"}


@pytest.mark.parametrize("method, data", [
    ("GET", None),
    ("POST", None),               # start-handling: no body, yet Content-Length: 0
    ("POST", b'{"a": "\xc3\xa9"}'),  # an ERP delivery: UTF-8 bytes
    ("POST", '{"a": 1}'),         # the VTEX client's ASCII JSON text
    ("PUT", b""),
])
def test_the_short_path_sends_what_requests_sends(server, method, data):
    url = f"http://127.0.0.1:{server.server_port}/api/oms/pvt/orders/1234-01/start-handling"
    answers = []
    for session in _sessions():
        answers.append(session.request(method, url, data=data, headers=HEADERS, timeout=(3, 5), allow_redirects=False))
    plain_seen, lean_seen = server.seen
    assert lean_seen == plain_seen
    assert [(a.status_code, a.json(), a.headers["Content-Type"], a.url) for a in answers] == [(200, {"ok": True}, "application/json", url)] * 2
    if method != "GET":
        assert dict(lean_seen[2])["content-length"] == str(len(data.encode() if isinstance(data, str) else data or b""))


def test_the_short_path_is_taken_for_a_plain_call_and_keeps_no_cookie(server):
    url = f"http://127.0.0.1:{server.server_port}/orders"
    _, lean = _sessions()
    with mock.patch.object(requests.Session, "prepare_request", side_effect=AssertionError("requests' own path")):
        first = lean.request("GET", url, headers=HEADERS, timeout=5, allow_redirects=False)
        second = lean.request("GET", url, headers=HEADERS, timeout=5, allow_redirects=False)
    assert first.status_code == second.status_code == 200
    assert first.elapsed.total_seconds() > 0  # as requests' own path measures it
    assert first.cookies.get("sid") == "abc"  # the answer's own cookies are readable...
    assert not lean.cookies  # ...but nothing is kept for the next call
    assert "cookie" not in dict(server.seen[1][2])


def test_a_header_set_to_none_removes_the_session_s_and_a_bad_header_is_refused(server):
    url = f"http://127.0.0.1:{server.server_port}/orders"
    plain, lean = _sessions()
    for session in (plain, lean):
        session.request("GET", url, headers={"User-Agent": None}, timeout=5, allow_redirects=False)
    assert server.seen[1] == server.seen[0]
    assert not dict(server.seen[1][2])["user-agent"].startswith("python-requests")
    with pytest.raises(requests.exceptions.InvalidHeader):
        lean.request("GET", url, headers={"X-Token": "abc\r\nX-Injected: 1"}, timeout=5, allow_redirects=False)
    assert len(server.seen) == 2


@pytest.mark.parametrize("kwargs", [
    {"params": {"maxlot": "10"}},
    {"json": {"a": 1}},
    {"data": {"form": "field"}},
    {"allow_redirects": True},
    {"auth": ("user", "secret")},
])
def test_any_other_call_is_requests_own(server, kwargs):
    url = f"http://127.0.0.1:{server.server_port}/redirect"
    call = {"headers": HEADERS, "timeout": 5, "allow_redirects": False, **kwargs}
    answers = [session.request("POST", url, **call) for session in _sessions()]
    half = len(server.seen) // 2
    assert server.seen[half:] == server.seen[:half]  # the same requests arrived, redirects included
    assert [a.status_code for a in answers] == [answers[0].status_code] * 2
    if kwargs.get("allow_redirects"):
        assert [a.url.rsplit("/", 1)[1] for a in answers] == ["landed", "landed"]


def test_a_url_that_needs_quoting_is_quoted_as_requests_does(server):
    url = f"http://127.0.0.1:{server.server_port}/orders/a b/ç"
    for session in _sessions():
        session.request("GET", url, timeout=5, allow_redirects=False)
    assert server.seen[0][1] == server.seen[1][1] == "/orders/a%20b/%C3%A7"


@responses.activate
def test_responses_still_mocks_the_short_path():
    responses.post("https://store.vtexcommercestable.com.br/api/oms/pvt/orders/1-01/start-handling", status=204)
    _, lean = _sessions()
    answer = lean.request("POST", "https://store.vtexcommercestable.com.br/api/oms/pvt/orders/1-01/start-handling",
                          headers=HEADERS, timeout=5, allow_redirects=False)
    assert answer.status_code == 204
    assert responses.calls[0].request.headers["Content-Length"] == "0"


def test_the_vtex_client_s_query_strings_take_the_short_path_and_arrive_as_requests_writes_them(server):
    from integration.vtex.client import VtexClient

    base = f"http://127.0.0.1:{server.server_port}"
    client = VtexClient(base, "vtexappkey-x", "token-x", pool_key=("query-test", base))
    window = ("2026-12-01T00:00:00.000Z", "2026-12-02T00:00:00.000Z")
    with mock.patch.object(requests.Session, "prepare_request", side_effect=AssertionError("requests' own path")):
        client.list_orders(status="ready-for-handling", created_from=window[0], created_to=window[1])
    plain, _ = _sessions()
    plain.get(base + "/api/oms/pvt/orders", timeout=5, params={
        "page": 1, "per_page": 100, "orderBy": "creationDate,asc", "f_status": "ready-for-handling",
        "f_creationDate": f"creationDate:[{window[0]} TO {window[1]}]"})
    client_path, requests_path = server.seen[0][1], server.seen[1][1]
    assert client_path == requests_path and "f_creationDate=creationDate%3A%5B2026" in client_path
