"""The VTEX Orders API client: HTTP and VTEX only, one pooled session per store, typed errors.

What it needs from the rest of the hub (route pauses shared by every worker, the rate cap,
response counts) comes in through a `RouteGuard`; the hub's implementation, backed by the
database, is `integration.pipeline.vtex_access`.
"""
import json
import logging
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlencode

import requests

from integration.lean_session import new_session
from integration.redaction import excerpt, register_secret
from integration.vtex import errors

log = logging.getLogger(__name__)

GET_RETRIES = 2  # idempotent GETs: a couple of quick retries on 5xx and network errors
GET_RETRY_DELAYS = (0.2, 0.6)
DEFAULT_TIMEOUT = (3.05, 20)  # (connect, read) seconds
DEFAULT_RETRY_AFTER = 60  # seconds a 429/503 without a usable Retry-After pauses the route

_sessions = {}


class RouteGuard(Protocol):
    """What the client asks of its caller around each call; `route` names a VTEX endpoint."""

    def paused_until(self, route) -> datetime | None:
        """When a pause of this route (after a 429/503) ends, or None when it is not paused."""

    def pause(self, route, seconds, reason, status=None) -> None:
        """Pause this route for every worker: VTEX said 429 or 503 (`status`); a 429 also tells
        the caller its rate cap for the route is too high."""

    def wait_for_slot(self, route) -> None:
        """Block until the rate cap lets one more call go out on this route."""

    def count_response(self, route, code) -> None:
        """Count one answer: a status code, or "network" when there was none."""


class NoGuard:
    """No pauses, no cap, no counts: for scripts and tests that talk to VTEX directly."""

    def paused_until(self, route):
        return None

    def pause(self, route, seconds, reason, status=None):
        pass

    def wait_for_slot(self, route):
        pass

    def count_response(self, route, code):
        pass


def _session_for(pool_key, base_url, pool_size):
    # One pooled session per store and process; requests.Session is safe enough for our use
    # (fixed headers) and keeps TLS connections alive across calls.
    key = (pool_key, base_url)
    session = _sessions.get(key)
    if session is None:
        session = _sessions[key] = new_session(base_url, pool_size, keep_cookies=True)
    return session


def case_insensitive_get(data, key, default=None):
    lowered = key.lower()
    for k, v in (data or {}).items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return default


def _retry_after_seconds(response, default):
    raw = response.headers.get("Retry-After")
    if not raw:
        return default
    try:
        return max(1, int(float(raw)))
    except ValueError:
        try:
            return max(1, int((parsedate_to_datetime(raw) - datetime.now(timezone.utc)).total_seconds()))
        except (TypeError, ValueError):
            return default


class VtexClient:
    """One store's Orders API. `pool_key` picks the per-process session (its pooled connections);
    `name` labels the store in log lines."""

    def __init__(self, base_url, app_key, app_token, *, guard: RouteGuard = NoGuard(), pool_key=None,
                 timeout=DEFAULT_TIMEOUT, pool_size=8, default_retry_after=DEFAULT_RETRY_AFTER, name=""):
        self.base_url = base_url
        self.guard = guard
        self.name = name
        self.default_retry_after = default_retry_after
        register_secret(app_token)
        self.headers = {
            "X-VTEX-API-AppKey": app_key,
            "X-VTEX-API-AppToken": app_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.session = _session_for(pool_key, self.base_url, pool_size)
        self.timeout = tuple(timeout)
        self.calls = 0

    # --- transport ---------------------------------------------------------------------------
    def _request(self, route, method, path, *, params=None, body=None, expect_json=True, ok=(200,)):
        paused_until = self.guard.paused_until(route)
        if paused_until is not None:
            seconds = max(1, int((paused_until - datetime.now(timezone.utc)).total_seconds()))
            raise errors.RoutePaused(f"VTEX route {route} is paused until {paused_until:%H:%M:%S} after a 429/503", retry_after=seconds, route=route)
        self.guard.wait_for_slot(route)
        retries = GET_RETRIES if method == "GET" else 0
        data = json.dumps(body) if body is not None else None
        url = self.base_url + path
        if params:
            # Written into the URL here, as requests writes it: a call with `params` took requests'
            # own path, not the session's short one (the feed's retrieve, 2 % of the hub's CPU).
            url += "?" + urlencode(params, doseq=True)
        for attempt in range(retries + 1):
            try:
                self.calls += 1
                response = self.session.request(method, url, data=data, headers=self.headers, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                self.guard.count_response(route, "network")
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
        self.guard.count_response(route, status)
        what = f"VTEX {method} {path} answered {status}"
        if status in ok:
            if not expect_json or status == 204 or not response.content:
                return None
            try:
                return response.json()
            except RecursionError:  # json's own recursion limit: nested far beyond any VTEX document
                raise errors.BadResponse(f"{what} with JSON nested too deeply to read", route=route, status=status,
                                         body=excerpt(response.text, 1000)) from None
            except ValueError:  # invalid JSON, invalid UTF-8, a number Python will not convert
                body = excerpt(response.text, 1000)
                raise errors.BadResponse(f"{what} with a body that is not JSON: {excerpt(response.text, 200)}", route=route, status=status, body=body) from None
        # Only an error needs the (redacted) body: redacting every 8 KB order cost more CPU than the call.
        body = excerpt(response.text, 1000)
        if status in (429, 503):
            seconds = _retry_after_seconds(response, self.default_retry_after)
            self.guard.pause(route, seconds, f"{status} from VTEX", status=status)
            log.warning("store=%s route=%s status=%s paused for %ss", self.name, route, status, seconds)
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
            raise errors.BadResponse(f"Retrieve feed items answered a JSON {type(items).__name__}, not a list", route="feed_retrieve")
        return items

    def commit_handles(self, handles):
        if handles:
            self._request("feed_commit", "POST", "/api/orders/feed", body={"handles": list(handles)}, expect_json=False)

    def get_feed_configuration(self):
        data = self._request("feed_config_get", "GET", "/api/orders/feed/config")
        if not isinstance(data, dict):
            raise errors.BadResponse("Feed configuration is not a JSON object", route="feed_config_get")
        queue = case_insensitive_get(data, "queue")
        queue = queue if isinstance(queue, dict) else {}
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
            raise errors.BadResponse(f"Get order answered a JSON {type(data).__name__}, not an object", route="get_order")
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
        data = self._request("list_orders", "GET", "/api/oms/pvt/orders", params=params)
        if data is not None and not isinstance(data, dict):
            raise errors.BadResponse(f"List orders answered a JSON {type(data).__name__}, not an object", route="list_orders")
        return data

    # --- hook ----------------------------------------------------------------------------------
    def get_hook_configuration(self):
        return self._request("hook_config_get", "GET", "/api/orders/hook/config")

    def save_hook_configuration(self, body):
        return self._request("hook_config_save", "POST", "/api/orders/hook/config", body=body)

    def delete_hook_configuration(self):
        return self._request("hook_config_delete", "DELETE", "/api/orders/hook/config", expect_json=False)

    # --- JSONata ---------------------------------------------------------------------------------
    def test_expression(self, expression, document):
        """VTEX's own check of a FromOrders expression: ``True`` when it is true for ``document``
        (a decoded JSON document, such as an order), else ``False``. VTEX takes the document as a
        JSON *string* (`Document`), and answers a bare ``true`` or ``false``."""
        body = {"Expression": expression, "Document": json.dumps(document, ensure_ascii=False)}
        result = self._request("test_expression", "POST", "/api/orders/expressions/jsonata", body=body)
        if not isinstance(result, bool):
            raise errors.BadResponse(f"Test JSONata expression answered {excerpt(json.dumps(result), 200)}, not true or false",
                                     route="test_expression")
        return result
