"""The admin's list figures: per-store health annotations and grouped sync counts, each a
bounded number of queries whatever the number of stores."""
from datetime import timedelta

from django.db.models import Count, F, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from integration.models import AdapterBinding, Alert, FeedEvent, OrderSync, SyncStatus

def _count_subquery(queryset, group_by):
    # COUNT in a correlated subquery: grouped by the outer key, so the subquery has one row (or none: 0).
    return Coalesce(Subquery(queryset.order_by().values(group_by).annotate(n=Count("pk")).values("n")[:1]), Value(0))


OPEN_SYNC_STATUSES = (SyncStatus.PENDING, SyncStatus.HELD, SyncStatus.FAILED)


def annotate_health(queryset, now=None):
    """The store list's per-store figures that come from small indexed ranges, as SQL annotations
    (events in the last 24 h by store and arrival time, open alerts by store, the feed's retention):
    part of the page's one query, whatever the number of stores. The sync figures come from
    `open_sync_figures`, one grouped query for the whole page."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    return queryset.annotate(
        events_24h=_count_subquery(FeedEvent.objects.filter(account=OuterRef("pk"), received_at__gte=since), "account"),
        open_alerts=_count_subquery(Alert.objects.filter(account=OuterRef("pk"), resolved_at__isnull=True), "account"),
        feed_retention=F("feed_config__retention"),
    )


def binding_stores(account_ids=None):
    """{binding pk: store pk}: a few rows, read once, so that the sync queries need no join."""
    qs = AdapterBinding.objects.order_by()
    if account_ids is not None:
        qs = qs.filter(account_id__in=list(account_ids))
    return dict(qs.values_list("pk", "account_id"))


def open_sync_figures(account_ids):
    """{store pk: {"pending", "held", "failed": n, "oldest_pending_at": when}} for the given stores.

    One grouped query over the open syncs (pending, held, failed), led by the sync status index.
    The GROUP BY starts with the status on purpose: grouped by binding first, SQLite's planner
    walks the binding index over every sync, delivered ones included.
    """
    stores = binding_stores(account_ids)
    figures = {pk: {"pending": 0, "held": 0, "failed": 0, "oldest_pending_at": None} for pk in account_ids}
    if not stores:
        return figures
    # No filter on the bindings: an IN list of a few bindings would tempt the planner onto the
    # binding index (every sync of those bindings); the open syncs of every store are few.
    rows = (OrderSync.objects.filter(status__in=OPEN_SYNC_STATUSES).order_by()
            .values_list("status", "binding_id").annotate(n=Count("pk"), oldest=Min("created_at")))
    for status, binding_id, n, oldest in rows:
        if binding_id not in stores:
            continue
        store = figures[stores[binding_id]]
        store[status] += n
        if status == SyncStatus.PENDING and (store["oldest_pending_at"] is None or oldest < store["oldest_pending_at"]):
            store["oldest_pending_at"] = oldest
    return figures


def attach_sync_figures(accounts):
    """Set pending_syncs, held_syncs, failed_syncs and oldest_pending_at on each store: one query for all."""
    accounts = list(accounts)
    figures = open_sync_figures([a.pk for a in accounts])
    for account in accounts:
        f = figures[account.pk]
        account.pending_syncs, account.held_syncs, account.failed_syncs = f["pending"], f["held"], f["failed"]
        account.oldest_pending_at = f["oldest_pending_at"]
    return accounts


def syncs_by_store_and_status(since, stores=None):
    """{store pk: {status: n}} for syncs created since `since`: one grouped query (status first, see above)."""
    stores = binding_stores() if stores is None else stores
    result = {}
    rows = (OrderSync.objects.filter(created_at__gte=since).order_by()
            .values_list("status", "binding_id").annotate(n=Count("pk")))
    for status, binding_id, n in rows:
        by_status = result.setdefault(stores.get(binding_id), {})
        by_status[status] = by_status.get(status, 0) + n
    return result


def open_alert_rows(account_ids=None):
    qs = Alert.objects.filter(resolved_at__isnull=True).order_by("opened_at")
    if account_ids is not None:
        qs = qs.filter(Q(account_id__in=account_ids) | Q(account__isnull=True))
    return qs
