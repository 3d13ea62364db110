"""The VTEX Orders API client: one pooled session per store, typed errors, shared route pauses."""
import json
import logging
import os
import threading
import time
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from django.utils import timezone

from integration.redaction import excerpt, register_secret
from integration.vtex import errors

log = logging.getLogger(__name__)

GET_RETRIES = 2  # idempotent GETs: a couple of quick retries on 5xx and network errors
GET_RETRY_DELAYS = (0.2, 0.6)

_sessions = {}
_counts_lock = threading.Lock()
_response_counts = {}  # (store pk, route, status code or "network") -> n, in this process


def _count(store, route, code):
    key = (store, route, str(code))
    with _counts_lock:
        _response_counts[key] = _response_counts.get(key, 0) + 1


def take_response_counts():
    """The counts since the last call (for flushing to the database)."""
    with _counts_lock:
        counts = dict(_response_counts)
        _response_counts.clear()
    return counts


def _session_for(account_id, base_url):
    # One pooled session per store and process; requests.Session is safe enough for our use
    # (no cookies, fixed headers) and keeps TLS connections alive across calls.
    key = (account_id, base_url)
    session = _sessions.get(key)
    if session is None:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(8, settings.DISPATCH_CONCURRENCY))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # The environment (proxies, CA bundle) is read once here rather than by requests on every
        # call: that per-call scan of os.environ and ~/.netrc was a tenth of the hub's CPU per order.
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
        _sessions[key] = session
    return session


_tokens = {}  # (store pk, ciphertext) -> app token: decrypt once per process, not per client


def _app_token(account):
    key = (account.pk, account.app_token_ciphertext, tuple(settings.HUB_ENCRYPTION_KEYS))
    token = _tokens.get(key)
    if token is None:
        token = _tokens[key] = account.app_token
    return token


# A route pause is looked up in the database at most once a second per process and route while
# none is active (a pause another worker records is seen within that second); a pause this
# process records, or finds, is honoured at once.
PAUSE_CHECK_SECONDS = 1.0
_pause_checked = {}  # (store pk, route) -> monotonic time of the last lookup that found no pause


def _active_pause(account_id, route):
    from integration.models import RoutePause

    key = (account_id, route)
    checked = _pause_checked.get(key)
    if checked is not None and time.monotonic() - checked < PAUSE_CHECK_SECONDS:
        return None
    paused_until = RoutePause.active_until(account_id, route)
    if paused_until is None:
        _pause_checked[key] = time.monotonic()
    else:
        _pause_checked.pop(key, None)
    return paused_until


def _forget_pause_check(account_id, route):
    _pause_checked.pop((account_id, route), None)


def case_insensitive_get(data, key, default=None):
    lowered = key.lower()
    for k, v in (data or {}).items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return default


def _retry_after_seconds(response):
    raw = response.headers.get("Retry-After")
    if not raw:
        return settings.VTEX_DEFAULT_RETRY_AFTER
    try:
        return max(1, int(float(raw)))
    except ValueError:
        try:
            return max(1, int((parsedate_to_datetime(raw) - timezone.now()).total_seconds()))
        except (TypeError, ValueError):
            return settings.VTEX_DEFAULT_RETRY_AFTER


class VtexClient:
    def __init__(self, account):
        self.account = account
        self.base_url = account.base_url
        token = _app_token(account)
        register_secret(token)
        self.headers = {
            "X-VTEX-API-AppKey": account.app_key,
            "X-VTEX-API-AppToken": token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.session = _session_for(account.pk, self.base_url)
        self.timeout = (settings.VTEX_CONNECT_TIMEOUT, settings.VTEX_READ_TIMEOUT)
        self.calls = 0

    # --- transport ---------------------------------------------------------------------------
    def _request(self, route, method, path, *, params=None, body=None, expect_json=True, ok=(200,)):
        from integration.ratelimit import wait_for_slot

        paused_until = _active_pause(self.account.pk, route)
        if paused_until is not None:
            seconds = max(1, int((paused_until - timezone.now()).total_seconds()))
            raise errors.RoutePaused(f"VTEX route {route} is paused until {paused_until:%H:%M:%S} after a 429/503", retry_after=seconds, route=route)
        wait_for_slot(self.account.pk, route)
        retries = GET_RETRIES if method == "GET" else 0
        data = json.dumps(body) if body is not None else None
        url = self.base_url + path
        for attempt in range(retries + 1):
            try:
                self.calls += 1
                response = self.session.request(method, url, params=params, data=data, headers=self.headers, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                _count(self.account.pk, route, "network")
                error = errors.NetworkError(f"{method} {path}: {type(exc).__name__}: {excerpt(str(exc), 300)}", route=route)
                if attempt < retries:
                    time.sleep(GET_RETRY_DELAYS[attempt])
                    continue
                raise error from None
            if response.status_code >= 500 and response.status_code != 503 and attempt < retries:
                time.sleep(GET_RETRY_DELAYS[attempt])
                continue
            return self._handle(route, method, path, response, expect_json, ok)

    def _handle(self, route, method, path, response, expect_json, ok):
        status = response.status_code
        _count(self.account.pk, route, status)
        what = f"VTEX {method} {path} answered {status}"
        if status in ok:
            if not expect_json or status == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                body = excerpt(response.text, 1000)
                raise errors.BadResponse(f"{what} with a body that is not JSON: {excerpt(response.text, 200)}", route=route, status=status, body=body) from None
        # Only an error needs the (redacted) body: redacting every 8 KB order cost more CPU than the call.
        body = excerpt(response.text, 1000)
        if status in (429, 503):
            from integration.models import RoutePause

            seconds = _retry_after_seconds(response)
            RoutePause.pause(self.account.pk, route, seconds, reason=f"{status} from VTEX")
            _forget_pause_check(self.account.pk, route)
            log.warning("store=%s route=%s status=%s paused for %ss", self.account.account_name, route, status, seconds)
            raise errors.RateLimited(f"{what}; route paused for {seconds}s", retry_after=seconds, route=route, status=status, body=body)
        if status in (401, 403):
            raise errors.Unauthorized(f"{what}: check the app key and token and their License Manager roles", route=route, status=status, body=body)
        if status == 404:
            raise errors.NotFound(f"{what}: {body[:200]}", route=route, status=status, body=body)
        if status == 409:
            raise errors.Conflict(f"{what}: {body[:300]}", route=route, status=status, body=body)
        if status >= 500:
            raise errors.ServerError(f"{what}: {body[:300]}", route=route, status=status, body=body)
        raise errors.ClientError(f"{what}: {body[:300]}", route=route, status=status, body=body)

    # --- feed ----------------------------------------------------------------------------------
    def retrieve_feed_items(self, maxlot=10):
        if not 1 <= int(maxlot) <= 10:
            raise ValueError("maxlot must be between 1 and 10")
        items = self._request("feed_retrieve", "GET", "/api/orders/feed", params={"maxlot": str(int(maxlot))})
        if not isinstance(items, list):
            raise errors.BadResponse(f"Retrieve feed items answered {type(items).__name__}, not a list", route="feed_retrieve", body=excerpt(json.dumps(items), 500))
        return items

    def commit_handles(self, handles):
        if handles:
            self._request("feed_commit", "POST", "/api/orders/feed", body={"handles": list(handles)}, expect_json=False)

    def get_feed_configuration(self):
        data = self._request("feed_config_get", "GET", "/api/orders/feed/config")
        if not isinstance(data, dict):
            raise errors.BadResponse("Feed configuration is not a JSON object", route="feed_config_get")
        queue = case_insensitive_get(data, "queue") or {}
        age = case_insensitive_get(data, "approximateAgeOfOldestMessageInSeconds")
        if age is None:
            age = case_insensitive_get(data, "aproximateAgeOfOldestMessageInSeconds")
        return {
            "filter": case_insensitive_get(data, "filter") or {},
            "visibility_timeout": case_insensitive_get(queue, "visibilityTimeoutInSeconds"),
            "retention": case_insensitive_get(queue, "MessageRetentionPeriodInSeconds"),
            "quantity": case_insensitive_get(data, "quantity"),
            "oldest_message_age": age,
            "raw": data,
        }

    def save_feed_configuration(self, body):
        return self._request("feed_config_save", "POST", "/api/orders/feed/config", body=body, expect_json=False)

    def delete_feed_configuration(self):
        return self._request("feed_config_delete", "DELETE", "/api/orders/feed/config", expect_json=False)

    # --- orders --------------------------------------------------------------------------------
    def get_order(self, order_id):
        data = self._request("get_order", "GET", f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}")
        if not isinstance(data, dict):
            raise errors.BadResponse("Get order answered something that is not a JSON object", route="get_order")
        return data

    def start_handling(self, order_id):
        self._request("start_handling", "POST", f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}/start-handling", expect_json=False, ok=(200, 204))

    def cancel_order(self, order_id, reason=""):
        return self._request("cancel", "POST", f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}/cancel", body={"reason": reason} if reason else None)

    # --- the way back: invoice, tracking number, delivery events -------------------------------
    def send_invoice(self, order_id, body):
        """Invoice notification; the same invoiceNumber again overwrites (a new receipt)."""
        return self._request("invoice", "POST", f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}/invoice", body=body)

    def send_tracking_number(self, order_id, invoice_number, body):
        path = f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}/invoice/{requests.utils.quote(invoice_number, safe='')}"
        return self._request("invoice_tracking", "PATCH", path, body=body)

    def update_tracking_status(self, order_id, invoice_number, body):
        path = (f"/api/oms/pvt/orders/{requests.utils.quote(order_id, safe='')}/invoice/"
                f"{requests.utils.quote(invoice_number, safe='')}/tracking")
        return self._request("invoice_delivery", "PUT", path, body=body)

    def list_orders(self, *, status=None, created_from=None, created_to=None, page=1, per_page=100):
        params = {"page": page, "per_page": per_page, "orderBy": "creationDate,asc"}
        if status:
            params["f_status"] = status
        if created_from and created_to:
            params["f_creationDate"] = f"creationDate:[{created_from} TO {created_to}]"
        return self._request("list_orders", "GET", "/api/oms/pvt/orders", params=params)

    # --- hook ----------------------------------------------------------------------------------
    def get_hook_configuration(self):
        return self._request("hook_config_get", "GET", "/api/orders/hook/config")

    def save_hook_configuration(self, body):
        return self._request("hook_config_save", "POST", "/api/orders/hook/config", body=body)

    def delete_hook_configuration(self):
        return self._request("hook_config_delete", "DELETE", "/api/orders/hook/config", expect_json=False)
