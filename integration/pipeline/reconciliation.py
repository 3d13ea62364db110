"""Reconciliation, the safety net under "nothing lost".

The feed can lose what the hub never sees: orders from before the feed existed, events past its
retention, events another consumer of the same app key committed away. Once in a while, list
each store's orders in ready-for-handling (VTEX's list endpoint, windowed by creation date and
within its 30-page cap) and bring in, through the same path as `sync_order`, every one the hub
has no ready-for-handling event for. The list's index lags about four minutes, so only orders
older than RECONCILE_MIN_AGE_SECONDS count.
"""
import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta, timezone as dt_timezone

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from integration.pipeline.sync_order import sync_order
from integration.models import Account, EventSource, FeedEvent
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

    def line(self):
        if self.error:
            return f"{self.store}: reconciliation failed: {self.error}"
        more = " (window truncated at 30 pages: run again with a shorter lookback)" if self.truncated else ""
        return f"{self.store}: listed {self.listed} ready-for-handling orders, brought in {len(self.brought_in)}{more}"


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
        known = set(FeedEvent.objects.filter(account=account, order_id__in=listed, state=READY_FOR_HANDLING).values_list("order_id", flat=True))
        for order_id in listed:
            if order_id in known:
                continue
            result = sync_order(account, order_id, client=client, source=EventSource.RECONCILE)
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
