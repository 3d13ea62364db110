"""POST each order as signed JSON to an HTTP endpoint the retailer runs (an ERP, iPaaS, ...).

Request (see docs/adapters/webhook.md for how a receiver verifies it):
    POST <url>
    Content-Type: application/json
    Idempotency-Key: <stable key per order x action x binding>
    User-Agent: vtex-order-hub/<version>
    X-Hub-Timestamp: <unix seconds>                       (only with a signing secret)
    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>  (only with a signing secret)
    Authorization: Bearer <token>                          (only with a bearer token)
    {"event": "order.send", "idempotency_key": ..., "timestamp": ..., "order": {...}, "vtex_order": {...}}

Redirects are followed by hand (at most 3) and only within the same scheme, host and port, so
the signature and the credentials never reach another server.
"""
import hashlib
import hmac
import json
import re
import time
from urllib.parse import parse_qsl, urljoin, urlsplit

import orjson
import requests

from integration.plugins import (
    CANCEL,
    REDACTED,
    SEND,
    STATUS,
    Adapter,
    Delivery,
    PermanentError,
    Setting,
    TransientError,
    excerpt,
    http_session,
    hub_version,
    is_secret_name,
    redact_headers,
    register_secret,
)

MAX_REDIRECTS = 3
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
TRANSIENT_CODES = frozenset({408, 425, 429})
MAX_RESPONSE_BYTES = 1024 * 1024
EXCERPT_LIMIT = 2000
REFERENCE_KEYS = ("id", "reference", "orderId")
EVENTS = {SEND: "order.send", CANCEL: "order.cancel", STATUS: "order.status"}
# Headers the hub sets itself; an operator's extra headers may not override them.
RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "host", "idempotency-key", "user-agent", "transfer-encoding",
    "connection", "x-hub-signature-256", "x-hub-timestamp",
})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_header_lines(text):
    """'Name: value' lines -> ({name: value}, [problems])."""
    headers, problems = {}, []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.fullmatch(name):
            problems.append(f"line {number} is not 'Name: value'")
        elif any(ord(c) < 32 and c != "\t" for c in value):
            problems.append(f"line {number} has a control character")
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"line {number}: {name} is set by the hub and cannot be overridden")
        else:
            headers[name] = value
    return headers, problems


def origin(url):
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def sign(secret, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookAdapter(Adapter):
    key = "webhook"
    label = "Webhook (signed JSON POST)"
    actions = frozenset({SEND, CANCEL, STATUS})
    settings = (
        Setting("url", "Endpoint URL", type="url", required=True,
                help="The hub POSTs each order here as JSON (https strongly recommended)."),
        Setting("signing_secret", "Signing secret", secret=True,
                help="When set, each request carries X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>."),
        Setting("bearer_token", "Bearer token", secret=True,
                help="When set, sent as 'Authorization: Bearer <token>'."),
        Setting("timeout", "Timeout (seconds)", type="int", default=30,
                help="Connect and read timeout of each request, 1 to 300 seconds."),
        Setting("headers", "Extra headers",
                help="Optional extra request headers, one 'Name: value' per line. Shown in the admin: put an API key in the secret ones below."),
        Setting("secret_headers", "Secret extra headers", secret=True,
                help="Extra request headers that carry a credential (an API key), one 'Name: value' per line: "
                     "stored encrypted and redacted from attempt excerpts."),
    )

    @classmethod
    def check_settings(cls, cleaned):
        errors = {}
        timeout = cleaned.get("timeout")
        if timeout is not None and not 1 <= timeout <= 300:
            errors["timeout"] = "Enter a number of seconds from 1 to 300."
        headers, problems = parse_header_lines(cleaned.get("headers") or "")
        secret_headers, secret_problems = parse_header_lines(cleaned.get("secret_headers") or "")
        if problems:
            errors["headers"] = "; ".join(problems) + "."
        elif cleaned.get("bearer_token") and any(n.lower() == "authorization" for n in headers):
            errors["headers"] = "Authorization is already set by the bearer token; remove one of them."
        if secret_problems:  # the message names lines, never a value
            errors["secret_headers"] = "; ".join(secret_problems) + "."
        elif cleaned.get("bearer_token") and any(n.lower() == "authorization" for n in secret_headers):
            errors["secret_headers"] = "Authorization is already set by the bearer token; remove one of them."
        elif {n.lower() for n in headers} & {n.lower() for n in secret_headers}:
            errors["secret_headers"] = "A header is both in the extra headers and in the secret ones; keep one."
        return errors

    def __init__(self, config):
        super().__init__(config)
        self.url = config["url"]
        self.timeout = config.get("timeout") or 30
        self.signing_secret = config.get("signing_secret") or ""
        self.bearer_token = config.get("bearer_token") or ""
        self.extra_headers, _ = parse_header_lines(config.get("headers") or "")
        secret_headers, _ = parse_header_lines(config.get("secret_headers") or "")
        self.extra_headers.update(secret_headers)
        self._secrets = [s for s in (self.signing_secret, self.bearer_token) if s]
        parts = urlsplit(self.url)
        if parts.password:
            self._secrets.append(parts.password)
        self._secrets += [v for k, v in parse_qsl(parts.query) if is_secret_name(k) and v]
        self._secrets += [v for k, v in self.extra_headers.items() if (is_secret_name(k) or k in secret_headers) and v]
        self._secret_header_names = {k.lower() for k in secret_headers}
        for secret in self._secrets:
            register_secret(secret)
        # One kept-alive session per endpoint and process, shared by every delivery to it.
        try:
            where = origin(self.url)
        except ValueError:  # a port that is not a number: the request itself reports it
            where = self.url
        self.session = http_session(("webhook", where), url=self.url)

    def close(self):
        pass  # the session outlives the adapter: its connections serve the next delivery

    # --- actions ------------------------------------------------------------------------------
    def send_order(self, order, raw, idempotency_key):
        return self._deliver(SEND, order, raw, idempotency_key)

    def cancel_order(self, order, raw, idempotency_key):
        return self._deliver(CANCEL, order, raw, idempotency_key)

    def status_changed(self, order, raw, state, idempotency_key):
        return self._deliver(STATUS, order, raw, idempotency_key, state=state)

    def check_connection(self):
        try:
            response, url = self._request("HEAD", b"", self._headers(b"", signed=False))
            if response.status_code >= 500 or response.status_code in (405, 501):
                response.close()
                response, url = self._request("GET", b"", self._headers(b"", signed=False))
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(self._scrub(f"{self._where()} is not reachable: {_describe(exc)}")) from None
        except requests.RequestException as exc:
            raise PermanentError(self._scrub(f"request to {self._where()} failed: {_describe(exc)}")) from None
        status = response.status_code
        response.close()
        if status >= 500:
            raise TransientError(f"{self._where()} answered HTTP {status}")
        message = f"{self._where()} is reachable (HTTP {status})."
        if status in (401, 403):
            message += " It refused the credentials: check the bearer token or extra headers."
        return message

    # --- the request --------------------------------------------------------------------------
    def _deliver(self, action, order, raw, idempotency_key, state=None):
        timestamp = int(time.time())
        payload = {"event": EVENTS[action], "idempotency_key": idempotency_key, "timestamp": timestamp}
        if state is not None:
            payload["state"] = state
        payload["order"] = order.to_dict()
        payload["vtex_order"] = raw
        body = _encode(payload)
        headers = self._headers(body, idempotency_key=idempotency_key, timestamp=timestamp)
        def request_excerpt_():  # made only when kept: on a failure, or a success the hub samples
            return self._request_excerpt(headers, body)

        try:
            response, final_url = self._request("POST", body, headers)
        except requests.Timeout as exc:
            raise TransientError(
                self._scrub(f"{self._where()} timed out after {self.timeout} s: {_describe(exc)}"),
                request_excerpt=request_excerpt_(),
            ) from None
        except requests.ConnectionError as exc:
            raise TransientError(
                self._scrub(f"could not connect to {self._where()}: {_describe(exc)}"),
                request_excerpt=request_excerpt_(),
            ) from None
        except requests.RequestException as exc:
            raise TransientError(
                self._scrub(f"request to {self._where()} failed: {_describe(exc)}"),
                request_excerpt=request_excerpt_(),
            ) from None
        except PermanentError as exc:
            exc.request_excerpt = request_excerpt_()
            raise
        try:
            content = _read_limited(response)
        except requests.RequestException as exc:
            raise TransientError(
                self._scrub(f"reading the answer of {self._where()} failed: {_describe(exc)}"),
                request_excerpt=request_excerpt_(),
            ) from None
        finally:
            response.close()
        status = response.status_code
        response_excerpt = self._scrub(excerpt(f"HTTP {status} {response.reason or ''}\n{_decode(content)}", EXCERPT_LIMIT))
        if 200 <= status < 300:
            return _Delivered(
                request_excerpt_,
                reference=_reference(content),
                response_excerpt=response_excerpt,
                detail=f"HTTP {status} from {self._where(final_url)}",
            )
        error = f"{self._where(final_url)} answered HTTP {status}"
        if status in TRANSIENT_CODES or status >= 500:
            raise TransientError(error, request_excerpt=request_excerpt_(), response_excerpt=response_excerpt)
        body_hint = self._scrub(excerpt(_decode(content), 300))
        raise PermanentError(
            f"{error}: {body_hint}" if body_hint else error,
            request_excerpt=request_excerpt_(),
            response_excerpt=response_excerpt,
        )

    def _headers(self, body, *, idempotency_key=None, timestamp=None, signed=True):
        headers = {"User-Agent": f"vtex-order-hub/{hub_version()}", "Accept": "application/json"}
        headers.update(self.extra_headers)
        if body or signed:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        if signed and self.signing_secret:
            headers["X-Hub-Timestamp"] = str(timestamp if timestamp is not None else int(time.time()))
            headers["X-Hub-Signature-256"] = sign(self.signing_secret, body)
        return headers

    def _request(self, method, body, headers):
        """Send, following at most MAX_REDIRECTS redirects within the same origin."""
        url = self.url
        start = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self.session.request(
                method, url, data=body if method not in ("GET", "HEAD") else None, headers=headers,
                timeout=self.timeout, allow_redirects=False, stream=True,
            )
            if response.status_code not in REDIRECT_CODES:
                return response, url
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise PermanentError(f"{self._where(url)} answered HTTP {response.status_code} without a Location")
            target = urljoin(url, location)
            try:
                target_origin = origin(target)
            except ValueError:  # e.g. a port that is not a number
                raise PermanentError(self._scrub(f"{self._where(url)} redirected to an invalid URL")) from None
            if target_origin != start:
                # Never send the signature or the credentials to a server the operator did not configure.
                raise PermanentError(self._scrub(
                    f"{self._where(url)} redirected (HTTP {response.status_code}) to another host, "
                    f"{self._where(target)}; not followed. Configure the final URL instead."
                ))
            if response.status_code == 303 and method == "POST":
                method, body = "GET", b""
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "x-hub-signature-256")}
            url = target
        raise PermanentError(f"{self._where(self.url)} redirected more than {MAX_REDIRECTS} times")

    def _where(self, url=None):
        parts = urlsplit(url or self.url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return self._scrub(f"{parts.scheme}://{host}{port}{parts.path or '/'}")

    def _request_excerpt(self, headers, body):
        shown = {k: (REDACTED if k.lower() in self._secret_header_names else v) for k, v in redact_headers(headers).items()}
        lines = [f"POST {self._where()}"] + [f"{k}: {v}" for k, v in shown.items()]
        return self._scrub(excerpt("\n".join(lines) + "\n\n" + _decode(body), EXCERPT_LIMIT))

    def _scrub(self, text):
        # redact() only knows secrets of 6+ characters; this adapter knows its own, however short.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, REDACTED)
        return text


class _Delivered(Delivery):
    """A Delivery whose request excerpt (the headers and ~15 KB body, cut and redacted) is made
    when it is first read: the hub keeps a success's excerpts one time in SUCCESS_EXCERPT_EVERY,
    and redacting every delivery's request was about 3 % of the hub's CPU in a burst."""

    def __init__(self, make_request_excerpt, **fields):
        self._make_request_excerpt, self._request_excerpt = make_request_excerpt, None
        super().__init__(**fields)

    @property
    def request_excerpt(self):
        if self._request_excerpt is None:
            self._request_excerpt = self._make_request_excerpt()
        return self._request_excerpt

    @request_excerpt.setter
    def request_excerpt(self, value):
        if value or self._request_excerpt is not None:  # the dataclass's __init__ sets its default ""
            self._request_excerpt = value


def _describe(exc):
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# What orjson writes as the standard library would with default=str: a date as str() gives it.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encode(payload):
    """The body: compact JSON in UTF-8, a value of any other type as its text (default=str).
    orjson writes an order's body in about a tenth of the standard library's time (it was 3.5 %
    of the hub's CPU); what orjson refuses (a whole number past 64 bits, a key that is not a
    string) is written by the standard library, as before."""
    try:
        return orjson.dumps(payload, default=str, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _read_limited(response):
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


def _decode(content):
    return content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content or "")


def _reference(content):
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    for key in REFERENCE_KEYS:
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:255]
    return ""
