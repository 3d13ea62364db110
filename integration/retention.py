"""Retention: the database does not grow forever, and customer data is not kept longer than needed.

Works in small batches (each its own short transaction), so a million rows never lock the
database. Failed and unresolved syncs are kept until an operator resolves them.
"""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from integration.models import FeedEvent, Order, OrderSync, SyncAttempt, SyncStatus

log = logging.getLogger(__name__)
FINISHED = (SyncStatus.SUCCEEDED, SyncStatus.SKIPPED, SyncStatus.DELIVERED_BY_HAND, SyncStatus.ABANDONED)
PII_KEYS = ("clientProfileData", "shippingData", "invoiceData", "clientPreferencesData")
SCRUBBED = "[removed after the retention period]"


@dataclass
class PruneReport:
    syncs: int = 0
    events: int = 0
    orders: int = 0
    snapshots_scrubbed: int = 0
    excerpts_scrubbed: int = 0
    details: dict = field(default_factory=dict)

    def line(self):
        return (f"pruned {self.syncs} finished syncs, {self.events} committed events, {self.orders} orders; "
                f"removed customer data from {self.snapshots_scrubbed} order snapshots and {self.excerpts_scrubbed} attempt excerpts")


def _delete_in_batches(queryset, batch):
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += queryset.model.objects.filter(pk__in=ids).delete()[1].get(queryset.model._meta.label, 0)


def scrub_snapshot(snapshot):
    """The order JSON without names, addresses, documents, e-mails or phones."""
    if not isinstance(snapshot, dict):
        return snapshot
    clean = {k: (SCRUBBED if k in PII_KEYS else v) for k, v in snapshot.items()}
    payment = clean.get("paymentData")
    if isinstance(payment, dict):
        for transaction in payment.get("transactions") or []:
            for pay in (transaction or {}).get("payments") or []:
                if isinstance(pay, dict) and "billingAddress" in pay:
                    pay["billingAddress"] = SCRUBBED
    return clean


def prune(now=None, batch=None):
    now = now or timezone.now()
    batch = batch or settings.RETENTION_BATCH_SIZE
    report = PruneReport()
    cutoff = now - timedelta(days=settings.RETENTION_DAYS)
    pii_cutoff = now - timedelta(days=settings.PII_RETENTION_DAYS)

    # Attempts go with their syncs (cascade); done one batch of syncs at a time.
    report.syncs = _delete_in_batches(OrderSync.objects.filter(status__in=FINISHED, updated_at__lt=cutoff), batch)
    report.events = _delete_in_batches(FeedEvent.objects.filter(received_at__lt=cutoff).exclude(committed_at__isnull=True, handle__gt=""), batch)
    open_syncs = OrderSync.objects.filter(order=OuterRef("pk"))
    report.orders = _delete_in_batches(Order.objects.filter(updated_at__lt=cutoff).exclude(Exists(open_syncs)), batch)

    while True:
        orders = list(Order.objects.filter(created_at__lt=pii_cutoff, pii_scrubbed_at__isnull=True).only("pk", "snapshot")[:batch])
        if not orders:
            break
        for order in orders:
            Order.objects.filter(pk=order.pk).update(snapshot=scrub_snapshot(order.snapshot), pii_scrubbed_at=now)
        report.snapshots_scrubbed += len(orders)
    while True:
        ids = list(SyncAttempt.objects.filter(started_at__lt=pii_cutoff).exclude(request_excerpt=SCRUBBED).exclude(request_excerpt="").values_list("pk", flat=True)[:batch])
        if not ids:
            break
        report.excerpts_scrubbed += SyncAttempt.objects.filter(pk__in=ids).update(request_excerpt=SCRUBBED, response_excerpt=SCRUBBED)
    log.info("retention: %s", report.line())
    return report
