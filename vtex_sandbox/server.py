"""HTTP front of the sandbox: the VTEX routes the hub uses, plus a no-auth control API under /_sandbox/.

VTEX routes (headers ``X-VTEX-API-AppKey`` + ``X-VTEX-API-AppToken`` pick the account; Host is ignored):
    GET/POST        /api/orders/feed                     feed_retrieve (?maxlot=1..10) / feed_commit
    GET/POST/DELETE /api/orders/feed/config              feed_config_get / _save / _delete
    GET/POST/DELETE /api/orders/hook/config              hook_config_get / _save / _delete
    GET             /api/oms/pvt/orders                  list_orders
    GET             /api/oms/pvt/orders/{id}             get_order
    POST            /api/oms/pvt/orders/{id}/start-handling, /cancel
    POST            /api/oms/pvt/orders/{id}/invoice                       invoice
    PATCH           /api/oms/pvt/orders/{id}/invoice/{number}              invoice_tracking
    PUT             /api/oms/pvt/orders/{id}/invoice/{number}/tracking     invoice_delivery
    POST            /api/orders/expressions/jsonata      test_expression ({"Expression", "Document"} -> true/false)
    TRACE (any path): 405 with a JSON error, as for any other method a route does not take

Each VTEX call: counted in stats -> global latency_ms -> slow -> drop -> rate_limit -> server_error
-> auth (401) -> the operation.

Control API (no auth, never faulted, not counted):
    GET  /_sandbox/health | /_sandbox/stats          POST /_sandbox/reset-stats
    GET|POST|DELETE /_sandbox/faults                 (POST merges JSON into the switches, DELETE resets)
    GET  /_sandbox/orders?app_key=K  -> [order, ...]
    POST /_sandbox/orders {"app_key", "count", "status"?, "kind"?, "seller_id"?, "seller_name"?,
                           "split_sellers"?, "gift_card_amount"?}  -> {"order_ids": [...]}
         kind: plain | marketplace | seller | split | pickup | gift_card (vtex_sandbox.order_kinds)
    POST /_sandbox/orders/{id}/customer-cancel       POST /_sandbox/orders/{id}/status {"status"}
    POST /_sandbox/accounts {"account_name", "app_key", "app_token", "feed_config"?}
    GET  /_sandbox/events?order_id=                  POST /_sandbox/advance-time {"seconds"}
"""
import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

from .feed import DEFAULT_FEED_CONFIG, ConfigError
from .httpbase import BackgroundServer, JsonHandler
from .vtex_api import ApiError

_ORDER = r"/api/oms/pvt/orders/(?P<order_id>[^/]+)"
ROUTES = [
    (re.compile(r"/api/orders/feed/?"), {"GET": "feed_retrieve", "POST": "feed_commit"}),
    (re.compile(r"/api/orders/feed/config/?"),
     {"GET": "feed_config_get", "POST": "feed_config_save", "DELETE": "feed_config_delete"}),
    (re.compile(r"/api/orders/hook/config/?"),
     {"GET": "hook_config_get", "POST": "hook_config_save", "DELETE": "hook_config_delete"}),
    (re.compile(r"/api/oms/pvt/orders/?"), {"GET": "list_orders"}),
    (re.compile(_ORDER + r"/start-handling/?"), {"POST": "start_handling"}),
    (re.compile(_ORDER + r"/cancel/?"), {"POST": "cancel"}),
    # The way back: invoice, tracking number, delivery events.
    (re.compile(_ORDER + r"/invoice/?"), {"POST": "invoice"}),
    (re.compile(_ORDER + r"/invoice/(?P<invoice_number>[^/]+)/tracking/?"), {"PUT": "invoice_delivery"}),
    (re.compile(_ORDER + r"/invoice/(?P<invoice_number>[^/]+)/?"), {"PATCH": "invoice_tracking"}),
    (re.compile(_ORDER + r"/?"), {"GET": "get_order"}),
    (re.compile(r"/api/orders/expressions/jsonata/?"), {"POST": "test_expression"}),
]
UNAUTHORIZED = {"error": {"code": "1", "message": "Unauthorized access", "exception": None}}
_BODY_ROUTES = {"feed_commit", "feed_config_save", "hook_config_save", "cancel", "test_expression"}
_INVOICE_ROUTES = {"invoice", "invoice_tracking", "invoice_delivery"}


def _error(status, message, code="1"):
    return {"error": {"code": code, "message": message, "exception": None}}


class SandboxHandler(JsonHandler):
    server_version = "VTEXSandbox/1.0"

    @property
    def sandbox(self):
        return self.owner.sandbox

    def do_TRACE(self):
        # The standard library answers an unknown method with an HTML 501; VTEX's API takes no TRACE
        # anywhere: answer as for any method a route does not take (405, JSON, nothing echoed back).
        self._body = None
        path = unquote(urlsplit(self.path).path)
        self.send_json(405, _error(405, f"Method TRACE not allowed on {path}"), {"Allow": "GET, POST, PUT, PATCH, DELETE"})

    def handle_request(self, method):
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        if path.startswith("/_sandbox/") or path == "/_sandbox":
            return self.control(method, path, query)
        for pattern, methods in ROUTES:
            match = pattern.fullmatch(path)
            if match:
                if method not in methods:
                    return self.send_json(405, _error(405, f"Method {method} not allowed on {path}"),
                                          {"Allow": ", ".join(methods)})
                self.invoice_number = match.groupdict().get("invoice_number")
                return self.vtex(methods[method], match.groupdict().get("order_id"), query)
        return self.send_json(404, _error(404, f"No route for {method} {path}"))

    # --- VTEX routes ------------------------------------------------------------------
    def vtex(self, route, order_id, query):
        sb, faults = self.sandbox, self.sandbox.faults
        sb.record_call(route, order_id)
        latency = faults.get("latency_ms") or 0
        if latency:
            time.sleep(latency / 1000.0)
        slow = faults.route_fault("slow", route)
        if slow:
            time.sleep(float(slow.get("delay_ms", 1000)) / 1000.0)
        if faults.route_fault("drop", route):
            return self.drop()
        limited = faults.route_fault("rate_limit", route)
        if limited:
            retry_after = limited.get("retry_after", 60)
            return self.send_json(429, _error(429, "Too Many Requests", "429"), {"Retry-After": retry_after})
        failed = faults.route_fault("server_error", route)
        if failed:
            status = int(failed.get("status", 500))
            return self.send_json(status, _error(status, "Injected server error", str(status)))
        account = sb.authenticate(self.headers.get("X-VTEX-API-AppKey"), self.headers.get("X-VTEX-API-AppToken"))
        if account is None:
            return self.send_json(401, UNAUTHORIZED)
        body = None
        if route in _BODY_ROUTES or route in _INVOICE_ROUTES:
            try:
                body = self.json_body()
            except ValueError:
                return self.send_json(400, _error(400, "The request body is not valid JSON."))
        key = account.app_key
        try:
            if route == "feed_retrieve":
                maxlot = (query.get("maxlot") or [None])[-1]
                return self.send_json(200, sb.feed_retrieve(key, maxlot))
            if route == "feed_commit":
                sb.feed_commit(key, body)
                return self.send_empty(200)
            if route == "feed_config_get":
                return self.send_json(200, sb.feed_config_get(key))
            if route == "feed_config_save":
                sb.feed_config_save(key, body)
                return self.send_empty(200)
            if route == "feed_config_delete":
                sb.feed_config_delete(key)
                return self.send_empty(200)
            if route == "hook_config_get":
                return self.send_json(200, sb.hook_config_get(key))
            if route == "hook_config_save":
                return self.send_json(200, sb.hook_config_save(key, body))
            if route == "hook_config_delete":
                sb.hook_config_delete(key)
                return self.send_empty(200)
            if route == "list_orders":
                return self.send_json(200, sb.list_orders(key, query))
            if route == "get_order":
                return self.send_json(200, sb.get_order(key, order_id))
            if route == "start_handling":
                sb.start_handling(key, order_id)
                return self.send_empty(204)
            if route == "cancel":
                return self.send_json(200, sb.cancel(key, order_id, body))
            if route == "test_expression":
                return self.send_json(200, sb.test_expression(key, body))
            if route in _INVOICE_ROUTES:
                return self.send_json(200, self.way_back(route, key, order_id, body))
        except ApiError as exc:
            return self.send_json(exc.status, exc.payload, exc.headers)
        raise AssertionError(route)

    def way_back(self, route, key, order_id, body):
        sb = self.sandbox
        if route == "invoice":
            return sb.invoice(key, order_id, body)
        if route == "invoice_tracking":
            return sb.invoice_tracking(key, order_id, self.invoice_number, body)
        return sb.invoice_delivery(key, order_id, self.invoice_number, body)

    # --- control API ------------------------------------------------------------------
    def control(self, method, path, query):
        sb = self.sandbox
        sub = path[len("/_sandbox"):].strip("/")
        try:
            body = self.json_body(default={}) if method in ("POST", "PUT", "PATCH") else {}
        except ValueError:
            return self.send_json(400, _error(400, "invalid JSON"))
        if not isinstance(body, dict):
            return self.send_json(400, _error(400, "the body must be a JSON object"))
        try:
            if sub == "health" and method == "GET":
                return self.send_json(200, {"ok": True})
            if sub == "stats" and method == "GET":
                return self.send_json(200, sb.stats())
            if sub == "reset-stats" and method == "POST":
                sb.reset_stats()
                return self.send_json(200, {"ok": True})
            if sub == "faults":
                if method == "POST":
                    return self.send_json(200, sb.faults.update(body))
                if method == "DELETE":
                    sb.faults.reset()
                if method in ("GET", "DELETE"):
                    return self.send_json(200, sb.faults.snapshot())
            if sub == "orders" and method == "GET":
                return self.send_json(200, sb.orders((query.get("app_key") or [""])[-1]))
            if sub == "orders" and method == "POST":
                options = {name: body[name] for name in ("seller_id", "seller_name", "split_sellers",
                                                          "gift_card_amount") if name in body}
                ids = sb.create_orders(body["app_key"], int(body.get("count", 1)),
                                       status=body.get("status", "ready-for-handling"),
                                       kind=body.get("kind", "plain"), **options)
                return self.send_json(200, {"order_ids": ids})
            match = re.fullmatch(r"orders/([^/]+)/(customer-cancel|status)", sub)
            if match and method == "POST":
                order_id, action = match.groups()
                app_key = sb.app_key_of(order_id)
                if action == "customer-cancel":
                    return self.send_json(200, sb.cancel_order_by_customer(app_key, order_id))
                sb.set_status(app_key, order_id, body["status"])
                return self.send_json(200, {"orderId": order_id, "status": sb.order_status(app_key, order_id)})
            if sub == "accounts" and method == "POST":
                account = sb.add_account(body["account_name"], body["app_key"], body["app_token"],
                                         feed_config=body.get("feed_config", DEFAULT_FEED_CONFIG))
                return self.send_json(201, {"account_name": account.name, "app_key": account.app_key})
            if sub == "events" and method == "GET":
                return self.send_json(200, sb.events((query.get("order_id") or [None])[-1]))
            if sub == "advance-time" and method == "POST":
                sb.advance_time(float(body.get("seconds", 0)))
                return self.send_json(200, {"now": sb.now()})
        except ApiError as exc:
            return self.send_json(exc.status, exc.payload, exc.headers)
        except KeyError as exc:
            return self.send_json(404 if "unknown" in str(exc) else 400, _error(400, f"missing or unknown: {exc}"))
        except (ValueError, TypeError, ConfigError) as exc:
            return self.send_json(400, _error(400, str(exc)))
        return self.send_json(404, _error(404, f"No control route for {method} {path}"))


class SandboxServer(BackgroundServer):
    """Serve a ``Sandbox`` over HTTP on a background thread: ``SandboxServer(sb, port=0).start().url``."""

    handler_class = SandboxHandler

    def __init__(self, sandbox, host="127.0.0.1", port=0):
        super().__init__(host, port)
        self.sandbox = sandbox
