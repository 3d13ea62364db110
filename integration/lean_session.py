"""A `requests.Session` whose plain calls skip the per-call work the hub never uses.

The hub makes about three HTTP calls an order (get order, the ERP delivery, start-handling), each
with fixed headers, a bytes body or none, no redirects followed, no cookies, no auth object and no
hooks. For such a call `Session.request` still builds a `Request`, merges cookies, hooks and
settings, checks `params` and `data` against runtime-checkable protocols (slow `isinstance` in
Python 3.11), re-parses and re-quotes the URL, then `Session.send` extracts cookies and looks for a
redirect. Measured on this project's 2-core machine (a 4 KB JSON answer over loopback, CPU of the
client): 560-700 us a call through `Session.request`, 370-480 us with the request prepared here and
handed to the transport adapter directly. The prepared call then goes out on a kept-alive
`http.client` connection (`integration.http_connections`), past requests' adapter and urllib3's
pool, which were more than half of what was left; a call that those connections cannot send as
requests would (a proxy, a client certificate, `verify=False`), or a session whose adapter was
replaced or patched (the `responses` library patches `HTTPAdapter.send`), goes to the adapter.

Anything outside that plain shape (params, a dict or file body, `json=`, files, auth, hooks, cookies,
redirects followed, per-call proxies or TLS settings, a URL that needs quoting) goes through
`requests.Session.request` unchanged.
"""
import http.cookiejar
import os
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests.adapters
import requests.utils
from requests import Session
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from integration.http_connections import ConnectionPool, Unsupported

# requests' own send, as this module found it: when a test library has patched it (`responses`
# does), the call goes to the patched adapter, not to this module's connections.
_ADAPTER_SEND = HTTPAdapter.send

# What a URL may hold to be sent as written: ASCII letters, digits and the characters RFC 3986
# allows unescaped, "%" for escapes already made. Anything else (a space, a non-ASCII host) takes
# requests' own path, which quotes it and encodes an internationalised host.
_URL_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%"
)


def _plain_url(url):
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    if not _URL_SAFE.issuperset(url):
        return False
    # user:password@ in the URL is an auth requests would turn into a header: its own path.
    return "@" not in url.split("/", 3)[2]


class LeanSession(Session):
    """`requests.Session`, with a short path for the calls described in the module's docstring."""

    def __init__(self, pool_size=10):
        super().__init__()
        self._connections = ConnectionPool(pool_size)

    def close(self):
        self._connections.close()
        super().close()

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None, auth=None,
                timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None, verify=None,
                cert=None, json=None):
        if (params or cookies or files or auth or hooks or json is not None or proxies or verify is not None
                or cert is not None or allow_redirects or self.auth or self.cookies or self.params
                or any(self.hooks.values()) or self.trust_env or not _plain_url(url)
                or not (data is None or isinstance(data, bytes) or (isinstance(data, str) and data.isascii()))):
            return super().request(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                   files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                   proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json)
        prepared = PreparedRequest()
        prepared.method = method.upper()
        prepared.url = url
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]  # as requests: a header set to None in the call removes the session's
        for header in merged.items():
            check_header_validity(header)  # no CR/LF smuggled into a header, as requests checks
        prepared.headers = merged
        prepared._cookies = None
        prepared.hooks = {"response": []}
        body = data.encode("ascii") if isinstance(data, str) else data
        if body:
            prepared.body = body
            merged["Content-Length"] = str(len(body))
        else:
            prepared.body = None  # requests sends no body for b"" either
            if prepared.method not in ("GET", "HEAD") and merged.get("Content-Length") is None:
                merged["Content-Length"] = "0"  # a POST without a body still says so (as requests does)
        stream = self.stream if stream is None else stream
        started = time.perf_counter()
        adapter = self.get_adapter(url)
        response = None
        if (type(adapter) is HTTPAdapter and HTTPAdapter.send is _ADAPTER_SEND and not self.proxies
                and self.cert is None and self.verify is not False):
            # requests' own adapter, neither replaced nor patched (`responses` patches its send):
            # the same call on a kept-alive http.client connection, at half the CPU.
            try:
                response = self._connections.send(prepared, timeout=timeout, stream=stream, verify=self.verify)
            except Unsupported:
                response = None  # nothing was sent: requests' adapter sends it
        if response is None:
            response = adapter.send(prepared, stream=stream, timeout=timeout, verify=self.verify,
                                    cert=self.cert, proxies=self.proxies)
        response.elapsed = timedelta(seconds=time.perf_counter() - started)  # as Session.send sets it
        if not stream:
            response.content  # read now, as requests does: the connection goes back to the pool
        return response


def new_session(url, pool_size, *, keep_cookies=False):
    """A LeanSession for calls to `url`'s host, with up to `pool_size` kept-alive connections. The
    environment (proxies, CA bundle) is read once, here, not by requests on every call: that
    per-call scan of os.environ and ~/.netrc was a tenth of the hub's CPU per order."""
    session = LeanSession(pool_size)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if not keep_cookies:
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    scheme = urlsplit(url).scheme.lower() if url else ""
    if scheme in ("http", "https"):
        session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and scheme != "http":
        # Only where TLS may be spoken: requests stats a CA bundle path on every request.
        session.verify = bundle
    session.trust_env = False  # the environment was read above, once; not again on every call
    return session
