"""Reconciliation, the safety net under "nothing lost".

The feed can lose what the hub never sees: orders from before the feed existed, events past its
retention, events another consumer of the same app key committed away. Once in a while, list
each store's orders in ready-for-handling (VTEX's list endpoint, windowed by creation date and
within its 30-page cap) and bring in, through the same path as `sync_order`, every one the hub
has no ready-for-handling event for. The list's index lags about four minutes, so only orders
older than RECONCILE_MIN_AGE_SECONDS count.

A store whose feed filter is FromOrders gets an event only for orders its JSONata expression is
true for: reconciliation keeps to that. It evaluates the expression on each order it would bring in
(the hub's bounded engine) and brings in only those it is true for; an order the hub already has
any event for counts as known (a single-fire expression may have matched before ready-for-handling).
"""
import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta, timezone as dt_timezone

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from integration import expressions
from integration.pipeline.sync_order import sync_order
from integration.models import Account, EventSource, FeedConfiguration, FeedEvent, FilterType
from integration.redaction import redact
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for
from integration.vtex.statuses import READY_FOR_HANDLING

log = logging.getLogger(__name__)
MAX_PAGES = 30
PER_PAGE = 100


@dataclass
class ReconcileReport:
    store: str
    listed: int = 0
    brought_in: list = field(default_factory=list)
    truncated: bool = False
    error: str = ""
    # FromOrders stores: orders left out because the expression is not true for them, and orders
    # whose check failed (left for the next run), as {order id: why}.
    expression: str = ""
    not_matching: list = field(default_factory=list)
    unchecked: dict = field(default_factory=dict)

    def line(self):
        if self.error:
            return f"{self.store}: reconciliation failed: {self.error}"
        more = " (window truncated at 30 pages: run again with a shorter lookback)" if self.truncated else ""
        if self.expression:
            more += (f"; left {len(self.not_matching)} out (the FromOrders expression is not true for them)"
                     + (f", {len(self.unchecked)} unchecked (the expression could not be evaluated)" if self.unchecked else ""))
        return f"{self.store}: listed {self.listed} ready-for-handling orders, brought in {len(self.brought_in)}{more}"


def from_orders_expression(account):
    """The store's FromOrders expression, or "" when its feed filter is FromWorkflow."""
    config = FeedConfiguration.objects.filter(account=account).first()
    if config is not None and config.filter_type == FilterType.FROM_ORDERS:
        return config.expression.strip()
    return ""


def _vtex_time(moment):
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def reconcile_account(account, now=None, client=None):
    now = now or timezone.now()
    report = ReconcileReport(store=account.account_name)
    client = client or client_for(account)
    window_end = now - timedelta(seconds=settings.RECONCILE_MIN_AGE_SECONDS)
    window_start = now - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)
    try:
        listed = []
        for page in range(1, MAX_PAGES + 1):
            data = client.list_orders(status=READY_FOR_HANDLING, created_from=_vtex_time(window_start),
                                      created_to=_vtex_time(window_end), page=page, per_page=PER_PAGE)
            rows = (data or {}).get("list") or []
            listed += [r.get("orderId") for r in rows if isinstance(r, dict) and r.get("orderId")]
            pages = ((data or {}).get("paging") or {}).get("pages") or 1
            if page >= pages or not rows:
                break
        else:
            report.truncated = True
        report.listed = len(listed)
        report.expression = from_orders_expression(account)
        events = FeedEvent.objects.filter(account=account, order_id__in=listed)
        if not report.expression:
            events = events.filter(state=READY_FOR_HANDLING)
        known = set(events.values_list("order_id", flat=True))
        for order_id in listed:
            if order_id in known:
                continue
            raw = None
            if report.expression:
                raw = client.get_order(order_id)
                result, problem = expressions.evaluate_expression(report.expression, raw)
                if problem:
                    report.unchecked[order_id] = problem
                    continue
                if result is not True:  # VTEX fires only on true
                    report.not_matching.append(order_id)
                    continue
            result = sync_order(account, order_id, client=client, source=EventSource.RECONCILE, raw=raw)
            if result.new:
                report.brought_in.append(order_id)
    except errors.VtexError as exc:
        report.error = redact(str(exc))
    Account.objects.filter(pk=account.pk).update(last_reconcile_at=Now(), last_reconcile_report=asdict(report))
    if report.brought_in:
        log.warning("reconciliation %s: %s", report.line(), ", ".join(report.brought_in[:20]))
    return report


def reconcile_all():
    return [reconcile_account(a) for a in Account.objects.filter(active=True)]
