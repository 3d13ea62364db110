"""The VTEX operations behind the HTTP routes (transport-free: return data or raise ApiError).

Mixed into ``Sandbox``; relies on its lock, clock, feeds, hooks and counters.
"""
import copy
import json
import math
import statistics
from urllib.parse import urlsplit

from .feed import ConfigError, FeedQueue, evaluate, expression_error, parse_feed_config, parse_filter
from .hooks import post_json
from .util import parse_iso


class ApiError(Exception):
    def __init__(self, status, payload=None, headers=None):
        super().__init__(f"{status} {payload}")
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def vtex_error(status, code, message):
    return ApiError(status, {"error": {"code": code, "message": message, "exception": None}})


def _config_error(exc):
    return vtex_error(exc.status, "1", exc.message)


def _body_object(body):
    if not isinstance(body, dict):
        raise vtex_error(400, "1", "The request body must be a JSON object.")
    return body


MAX_PAGES = 30


def _figures(values, facets=None):
    """VTEX's list statistics of some integers (its schema: Count, Max, Mean, Min, Missing, StdDev,
    Sum, SumOfSquares, Facets), all integers but the mean and the deviation."""
    mean = statistics.fmean(values) if values else 0
    deviation = statistics.pstdev(values) if values else 0
    return {"Count": len(values), "Max": max(values, default=0), "Mean": _number(mean), "Min": min(values, default=0),
            "Missing": 0, "StdDev": _number(deviation), "Sum": sum(values),
            "SumOfSquares": sum(v * v for v in values), "Facets": facets}


def _number(value):
    # VTEX prints a whole double without its fraction ("Mean": 1 in its example), and its schema
    # types some of these as integers: do the same.
    return int(value) if float(value).is_integer() else value


def _stats(orders, value_of):
    """One figure of the list (total value or total items) with its facets by origin and currency."""
    values = [value_of(o) for o in orders]
    by_origin = {origin: _figures([value_of(o) for o in orders if o["origin"] == origin])
                 for origin in ("Fulfillment", "Marketplace")}
    return _figures(values, {"origin": by_origin, "currencyCode": {"BRL": _figures(values)}})


class VtexApiMixin:
    # --- feed config ----------------------------------------------------------------
    def _feed(self, app_key):
        feed = self._feeds.get(app_key)
        if feed is None:
            raise vtex_error(404, "1", "Feed configuration not found for this appKey")
        return feed

    def feed_config_get(self, app_key):
        with self._lock:
            feed = self._feed(app_key)
            now = self.now()
            feed.expire(now)
            return dict(copy.deepcopy(feed.config), quantity=feed.depth(),
                        approximateAgeOfOldestMessageInSeconds=round(feed.oldest_age(now), 3))

    def feed_config_save(self, app_key, body):
        try:
            config = parse_feed_config(body)
        except ConfigError as exc:
            raise _config_error(exc) from None
        with self._lock:
            feed = self._feeds.get(app_key)
            if feed is None:  # a new feed only gets changes made from now on
                self._feeds[app_key] = FeedQueue(config)
            else:             # reconfiguration: events already queued stay
                feed.config = config
            self._touch()

    def feed_config_delete(self, app_key):
        with self._lock:
            self._feed(app_key)
            del self._feeds[app_key]
            self._touch()

    # --- feed -----------------------------------------------------------------------
    def feed_retrieve(self, app_key, maxlot):
        with self._lock:
            feed = self._feed(app_key)
            try:
                lot = int(maxlot)
            except (TypeError, ValueError):
                lot = 0
            if not 1 <= lot <= 10:
                raise vtex_error(400, "1", "maxlot is required and must be between 1 and 10")
            now = self.now()
            feed.expire(now)
            visible = feed.visible(now)
            if self.faults.get("reorder"):
                self.faults.shuffle(visible)
            n = min(lot, len(visible))
            if n and self.faults.fires("partial"):
                n = self.faults.randint(0, n - 1)
            items = feed.receive(visible[:n], now, self._id_rng, app_key)
            self._retrieved += len(items)
            if items:
                self._touch()
            return items

    def feed_commit(self, app_key, body):
        body = _body_object(body)
        handles = body.get("handles")
        if not isinstance(handles, list):
            raise vtex_error(400, "1", "The handles field is required.")
        with self._lock:
            removed = self._feed(app_key).commit(handles)
            self._committed += removed
            if removed:
                self._touch()
            return removed

    # --- orders ---------------------------------------------------------------------
    def get_order(self, app_key, order_id):
        return self.order(app_key, order_id)

    def start_handling(self, app_key, order_id):
        with self._lock:
            record = self._record(app_key, order_id)
            if record["data"]["status"] != "ready-for-handling":
                raise vtex_error(409, "OMS003", "Order status should be ready-for-handling to perform this action")
            self._transition_locked(record, "start-handling")
            self._sh_ok[record["data"]["orderId"]] += 1
            delay_ms = self.faults.get("handling_delay_ms") or 0
            if delay_ms <= 0:
                self._transition_locked(record, "handling")
            else:
                self._schedule(delay_ms / 1000.0, self._finish_handling, record)

    def _finish_handling(self, record):
        with self._lock:
            if record["data"]["status"] == "start-handling":
                self._transition_locked(record, "handling")

    def cancel(self, app_key, order_id, body=None):
        reason = body.get("reason") if isinstance(body, dict) else None
        return self._cancel(app_key, order_id, reason or "Cancelado via API", by_user=False)

    def list_orders(self, app_key, query):
        def one(name, default=None):
            values = query.get(name)
            return values[-1] if values else default

        try:
            page, per_page = int(one("page", 1)), int(one("per_page", 15))
        except ValueError:
            raise vtex_error(400, "1", "page and per_page must be integers") from None
        if not 1 <= per_page <= 100:
            raise vtex_error(400, "1", "per_page must be between 1 and 100")
        if page < 1:
            raise vtex_error(400, "1", "page must be >= 1")
        if page > MAX_PAGES:
            raise vtex_error(400, "1", f"Max page exceed ( {MAX_PAGES} ), refine filter")
        statuses = {s for s in (one("f_status") or "").split(",") if s}
        start = end = None
        date_filter = one("f_creationDate")
        if date_filter:
            try:
                inner = date_filter.split(":", 1)[1].strip().strip("[]")
                lo, hi = inner.split(" TO ")
                start, end = parse_iso(lo), parse_iso(hi)
            except (IndexError, ValueError):
                raise vtex_error(400, "1", "f_creationDate must look like creationDate:[A TO B]") from None
        descending = (one("orderBy") or "creationDate,desc").lower().endswith(",desc")
        with self._lock:
            rows = [copy.deepcopy(o) for o in self.orders(app_key)]
        picked = []
        for order in rows:
            created = parse_iso(order["creationDate"])
            if statuses and order["status"] not in statuses:
                continue
            if start is not None and not start <= created <= end:
                continue
            picked.append(order)
        picked.sort(key=lambda o: parse_iso(o["creationDate"]), reverse=descending)
        total = len(picked)
        window = picked[(page - 1) * per_page: page * per_page]
        return {
            "list": [self._list_row(o) for o in window],
            "facets": [],
            "paging": {"total": total, "pages": math.ceil(total / per_page), "currentPage": page, "perPage": per_page},
            "stats": {"stats": {"totalValue": _stats(picked, lambda o: o["value"]),
                                "totalItems": _stats(picked, lambda o: sum(i["quantity"] for i in o["items"]))}},
        }

    @staticmethod
    def _list_row(order):
        client = order["clientProfileData"]
        return {
            "orderId": order["orderId"], "creationDate": order["creationDate"],
            "clientName": f"{client['firstName']} {client['lastName']}", "items": None,
            "totalValue": order["value"], "paymentNames": order["paymentData"]["transactions"][0]["payments"][0][
                "paymentSystemName"], "status": order["status"], "statusDescription": order["statusDescription"],
            "marketPlaceOrderId": order["marketplaceOrderId"] or None, "sequence": order["sequence"], "salesChannel": order["salesChannel"],
            "affiliateId": order["affiliateId"], "origin": order["origin"], "workflowInErrorState": False,
            "workflowInRetry": False, "lastMessageUnread": None, "ShippingEstimatedDate": None,
            "ShippingEstimatedDateMax": None, "ShippingEstimatedDateMin": None,
            "orderIsComplete": True, "listId": None, "listType": None, "authorizedDate": order["authorizedDate"],
            "callCenterOperatorName": None, "totalItems": sum(i["quantity"] for i in order["items"]),
            "currencyCode": "BRL", "hostname": order["hostname"], "lastChange": order["lastChange"],
            "invoiceOutput": None, "invoiceInput": None, "isAllDelivered": False, "isAnyDelivered": False,
            "orderFormId": order["orderFormId"],
        }

    # --- JSONata test -----------------------------------------------------------------
    def test_expression(self, app_key, body):
        """POST /api/orders/expressions/jsonata: ``{"Expression": str, "Document": str}`` -> ``true``/``false``.

        True when the expression evaluates to ``true`` on the document, as a FromOrders filter fires.
        VTEX does not document its answer to a bad expression or document: the sandbox answers 400.
        """
        body = _body_object(body)
        fields = {str(k).lower(): v for k, v in body.items()}  # .NET binds keys case-insensitively
        expression, document = fields.get("expression"), fields.get("document")
        if not isinstance(expression, str) or not expression.strip():
            raise vtex_error(400, "1", "The Expression field is required (a JSONata expression).")
        if not isinstance(document, str):
            raise vtex_error(400, "1", "The Document field is required (a JSON document, as a string).")
        try:
            parsed = json.loads(document)
        except (ValueError, RecursionError):
            raise vtex_error(400, "1", "The Document field is not a valid JSON document.") from None
        try:
            problem = expression_error(expression)
        except ConfigError as exc:
            raise _config_error(exc) from None
        if problem:
            raise vtex_error(400, "1", f"Invalid JSONata expression: {problem}")
        try:
            return evaluate(expression, parsed, fresh=True) is True
        except Exception as exc:
            raise vtex_error(400, "1", f"The expression could not be evaluated: {exc}") from None

    # --- hook config ----------------------------------------------------------------
    def _hook_view(self, app_key, hook):
        account = self._accounts[app_key]
        return {"filter": copy.deepcopy(hook["filter"]), "hook": copy.deepcopy(hook["hook"]),
                "origin": {"account": account.name, "key": app_key}}

    def hook_config_get(self, app_key):
        with self._lock:
            hook = self._hooks.get(app_key)
            if hook is None:
                raise vtex_error(404, "1", "Hook configuration not found for this appKey")
            return self._hook_view(app_key, hook)

    def hook_config_save(self, app_key, body):
        body = _body_object(body)
        try:
            flt = parse_filter(body.get("filter"))
        except ConfigError as exc:
            raise _config_error(exc) from None
        hook = body.get("hook")
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
            raise vtex_error(400, "1", "The hook.url field is required.")
        url = hook["url"]
        scheme = urlsplit(url).scheme.lower()
        allowed = ("https", "http") if self.allow_http_hooks else ("https",)
        if scheme not in allowed or not urlsplit(url).netloc:
            raise vtex_error(400, "1", "Only https scheme is accepted")
        headers = hook.get("headers") or {}
        if not isinstance(headers, dict):
            raise vtex_error(400, "1", "hook.headers must be an object.")
        headers = {str(k): str(v) for k, v in headers.items()}
        status = post_json(url, {"hookConfig": "ping"}, headers)  # outside the lock
        if status != 200:
            raise ApiError(400, {"error": {"code": "1", "message":
                                           f"The hook ping to {url} did not answer 200 (got {status or 'no response'})",
                                           "exception": None}})
        with self._lock:
            self._hooks[app_key] = {"filter": flt, "hook": {"url": url, "headers": headers}}
            self._touch()
            return self._hook_view(app_key, self._hooks[app_key])

    def hook_config_delete(self, app_key):
        with self._lock:
            if self._hooks.pop(app_key, None) is None:
                raise vtex_error(404, "1", "Hook configuration not found for this appKey")
            self._touch()
