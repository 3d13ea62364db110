"""The kept-alive http.client connections under LeanSession's plain calls: against real servers
(plain HTTP and TLS on loopback), an answer reads as requests' own adapter gives it, connections
are kept and dropped as urllib3 keeps and drops them, and errors are requests' exceptions."""
import datetime
import gzip
import socket
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integration.lean_session import new_session

ORDER = b'{"orderId": "1234-01", "items": [' + b",".join(b'{"id": "%d", "name": "caf\xc3\xa9"}' % i for i in range(300)) + b"]}"


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.peers.append(self.client_address[1])
        kind = self.path.strip("/").split("?")[0]
        body, headers = ORDER, [("Content-Type", "application/json")]
        if kind == "gzip":
            body, headers = gzip.compress(ORDER), headers + [("Content-Encoding", "gzip")]
        elif kind == "gzip-two-members":
            body = gzip.compress(ORDER[:100]) + gzip.compress(ORDER[100:])
            headers += [("Content-Encoding", "gzip")]
        elif kind == "deflate":
            body, headers = zlib.compress(ORDER), headers + [("Content-Encoding", "deflate")]
        elif kind == "raw-deflate":
            squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body, headers = squeeze.compress(ORDER) + squeeze.flush(), headers + [("Content-Encoding", "deflate")]
        elif kind == "not-gzip":
            body, headers = b"this is not gzip at all", headers + [("Content-Encoding", "gzip")]
        elif kind == "unknown-encoding":
            body, headers = b"\x00\x01opaque", headers + [("Content-Encoding", "x-custom")]
        elif kind == "repeated-headers":
            headers += [("X-Seen", "one"), ("X-Seen", "two"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]
        elif kind == "slow":
            time.sleep(1.5)
        elif kind == "short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"only this")
            self.close_connection = True
            return
        elif kind == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (ORDER[:1000], ORDER[1000:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        elif kind == "close-header":
            headers += [("Connection", "close")]
        elif kind == "closes-silently":
            self.close_connection = True  # no "Connection: close": the client learns it from the socket
        elif kind == "no-content":
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.server.peers.append(self.client_address[1])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(httpd):
    httpd.peers, httpd.bodies = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd


@pytest.fixture
def server():
    httpd = _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Server))
    httpd.url = f"http://127.0.0.1:{httpd.server_port}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def lean(server):
    session = new_session(server.url, 4)
    yield session
    session.close()


def _get(session, url, **kw):
    return session.request("GET", url, headers={"Accept": "application/json"}, timeout=kw.pop("timeout", (3, 5)),
                           allow_redirects=False, **kw)


@pytest.fixture
def no_urllib3():
    """Proof that a call took the short path: urllib3's pool is never asked to send."""
    with mock.patch.object(urllib3.connectionpool.HTTPConnectionPool, "urlopen",
                           side_effect=AssertionError("went through urllib3")) as urlopen:
        yield urlopen


@pytest.mark.parametrize("path", ["plain", "gzip", "gzip-two-members", "deflate", "raw-deflate", "chunked",
                                  "repeated-headers", "unknown-encoding", "no-content"])
def test_an_answer_reads_as_requests_own_adapter_gives_it(server, lean, path):
    url = f"{server.url}/{path}"
    plain = requests.Session()
    plain.trust_env = False
    expected = _get(plain, url)
    with mock.patch.object(urllib3.connectionpool.HTTPConnectionPool, "urlopen", side_effect=AssertionError("urllib3")):
        got = _get(lean, url)
    assert got.status_code == expected.status_code
    assert got.reason == expected.reason
    assert got.content == expected.content
    assert got.encoding == expected.encoding and got.text == expected.text
    skip = {"date"}  # a second apart, perhaps
    assert {k.lower(): v for k, v in got.headers.items() if k.lower() not in skip} == \
           {k.lower(): v for k, v in expected.headers.items() if k.lower() not in skip}
    assert dict(got.cookies) == dict(expected.cookies)
    assert got.url == expected.url == url
    if path in ("plain", "gzip", "chunked"):
        assert got.json()["items"][299] == {"id": "299", "name": "café"}


def test_a_connection_is_kept_and_reused(server, lean, no_urllib3):
    for _ in range(3):
        assert _get(lean, f"{server.url}/plain").status_code == 200
    lean.request("POST", f"{server.url}/orders", data=b'{"a": 1}', headers={}, timeout=5, allow_redirects=False)
    assert len(set(server.peers)) == 1  # one TCP connection for four calls
    assert server.bodies == [b'{"a": 1}']


def test_threads_share_the_pool_and_each_gets_its_own_connection(server, lean, no_urllib3):
    results = []

    def call():
        results.append(_get(lean, f"{server.url}/plain").content == ORDER)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8
    assert len(lean._connections._idle[("http", "127.0.0.1", server.server_port, None)]) <= 4  # pool_size kept


@pytest.mark.parametrize("path", ["close-header", "closes-silently"])
def test_a_connection_the_server_closed_is_not_reused(server, lean, path, no_urllib3):
    assert _get(lean, f"{server.url}/{path}").status_code == 200
    time.sleep(0.1)  # the server's FIN arrives
    assert _get(lean, f"{server.url}/plain").status_code == 200  # not a "connection reset" on a dead socket
    assert len(set(server.peers)) == 2


def test_a_streamed_body_comes_in_bounded_chunks_and_a_half_read_one_closes_its_connection(server, lean, no_urllib3):
    response = _get(lean, f"{server.url}/gzip", stream=True)
    chunks = list(response.iter_content(chunk_size=512))
    assert b"".join(chunks) == ORDER
    assert max(len(c) for c in chunks) <= 512  # decompressed a step at a time, never the whole at once
    half = _get(lean, f"{server.url}/plain", stream=True)
    assert len(next(half.iter_content(chunk_size=100))) == 100
    half.close()  # the rest of the body is still on that connection: it must not carry another call
    assert _get(lean, f"{server.url}/plain").content == ORDER
    assert len(set(server.peers)) == 2


def test_errors_are_requests_own(server, lean, no_urllib3):
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(lean, f"{server.url}/slow", timeout=(3, 0.3))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _get(lean, f"{server.url}/short")
    with pytest.raises(requests.exceptions.ContentDecodingError):
        _get(lean, f"{server.url}/not-gzip")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        _get(lean, f"http://127.0.0.1:{port}/plain")
    assert not isinstance(refused.value, requests.exceptions.Timeout)
    assert _get(lean, f"{server.url}/plain").content == ORDER  # and the pool is still good


def _tls_files(tmp_path, host_name):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _tls_files(tmp_path, "localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    _serve(httpd)
    httpd.ca = cert
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_tls_is_verified_against_the_session_s_bundle_with_the_host_name_checked(tls_server, no_urllib3):
    url = f"https://localhost:{tls_server.server_port}/gzip"
    trusting = new_session(url, 2)
    trusting.verify = tls_server.ca
    assert _get(trusting, url).content == ORDER
    assert _get(trusting, url).content == ORDER
    assert len(set(tls_server.peers)) == 1  # the TLS connection is kept too
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(new_session(url, 2), url)  # the default bundle (certifi) does not know this certificate
    with pytest.raises(requests.exceptions.SSLError, match="match|mismatch"):
        _get(trusting, f"https://127.0.0.1:{tls_server.server_port}/plain")  # the certificate names localhost only


def test_what_it_cannot_send_alike_goes_to_requests_adapter(server):
    for configure in (lambda s: s.proxies.update({"http": server.url}), lambda s: setattr(s, "verify", False)):
        session = new_session(server.url, 2)
        configure(session)
        with mock.patch.object(urllib3.connectionpool.HTTPConnectionPool, "urlopen",
                               side_effect=AssertionError("urllib3 asked")):
            with pytest.raises(AssertionError, match="urllib3 asked"):
                _get(session, f"{server.url}/plain")
    session = new_session(server.url, 2)
    timeout = urllib3.Timeout(connect=3, read=5)
    assert session.request("GET", f"{server.url}/plain", timeout=timeout, allow_redirects=False).content == ORDER
