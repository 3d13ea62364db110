"""The health dashboard (one page, every store) and the alerts list.

Every figure is an SQL aggregate over an indexed range (syncs by creation time, grouped by store,
status and `TruncHour`), so the page costs the same handful of queries for two stores or two
hundred and for a thousand syncs or ten million. The chart is inline SVG drawn here: no CDN and
no JavaScript, since the hub may run without internet access.
"""
from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import TruncHour
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from integration.operations import queries
from integration.operations import results
from integration.operations import stores as store_ops
from integration.admin.display import truncated
from integration.admin.updates import attach_update_figures, refusals_url
from integration.models import Account, Alert, OrderSync, SyncStatus

HOURS = 24
# Stacked bar series: (name, colour, statuses)
SERIES = (
    ("delivered", "#1a7f37", (SyncStatus.SUCCEEDED, SyncStatus.DELIVERED_BY_HAND)),
    ("failed", "#b00020", (SyncStatus.FAILED,)),
    ("waiting", "#d4a72c", (SyncStatus.PENDING, SyncStatus.HELD)),
    ("other", "#8c959f", (SyncStatus.SKIPPED, SyncStatus.ABANDONED)),
)
SERIES_OF = {status: name for name, _, statuses in SERIES for status in statuses}


# --- alerts --------------------------------------------------------------------------------------
class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("recovered", "Recovered")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "recovered":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-only: alerts open and recover by themselves (`integration.alerts`)."""

    list_display = ["kind", "short_subject", "store", "short_message", "opened_at", "resolved_at", "short_recovery"]
    list_filter = [AlertStateFilter, "kind", "account"]
    list_select_related = ["account"]
    search_fields = ["subject", "message"]
    show_full_result_count = False

    @admin.display(description="subject", ordering="subject")
    def short_subject(self, obj):
        return truncated(obj.subject, "12em")

    @admin.display(description="store", ordering="account__name")
    def store(self, obj):
        return truncated(obj.account.name if obj.account else "", "12em")

    @admin.display(description="message")
    def short_message(self, obj):
        return truncated(obj.message, "24em")

    @admin.display(description="recovery")
    def short_recovery(self, obj):
        return truncated(obj.recovery_message, "14em")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- the dashboard -------------------------------------------------------------------------------------
def hour_buckets(now):
    """The HOURS hour starts (in the current time zone) ending with the current hour."""
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=HOURS - 1 - n) for n in range(HOURS)]


def dashboard_data(now=None):
    """Everything the dashboard shows, in a fixed number of queries."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    buckets = hour_buckets(now)
    failed = (OrderSync.objects.filter(binding__account=OuterRef("pk"), status=SyncStatus.FAILED)
              .order_by("created_at", "pk"))
    stores = list(
        Account.objects.select_related("feed_config").order_by("name")
        .annotate(oldest_failed_at=Subquery(failed.values("created_at")[:1]),
                  oldest_failed_order=Subquery(failed.values("order_id")[:1]),
                  oldest_failed_order_id=Subquery(failed.values("order__order_id")[:1]))
    )
    attach_update_figures(stores)  # held and failed updates to VTEX, refused cancellations: two grouped queries
    binding_stores = queries.binding_stores()
    by_status = queries.syncs_by_store_and_status(since, binding_stores)
    hourly = {}
    # Grouped by status first and by binding (no join): see operations.queries.open_sync_figures.
    rows = (OrderSync.objects.filter(created_at__gte=buckets[0]).order_by()
            .annotate(hour=TruncHour("created_at"))
            .values_list("status", "hour", "binding_id").annotate(n=Count("pk")))
    index = {bucket: n for n, bucket in enumerate(buckets)}
    for status, hour, binding_id, n in rows:
        slot = index.get(timezone.localtime(hour).replace(minute=0, second=0, microsecond=0) if hour else None)
        account_id = binding_stores.get(binding_id)
        if slot is None or account_id is None:
            continue
        per_hour = hourly.setdefault(account_id, [dict.fromkeys((s[0] for s in SERIES), 0) for _ in buckets])
        per_hour[slot][SERIES_OF.get(status, "other")] += n
    alerts = {}
    for alert in queries.open_alert_rows().select_related("account"):
        alerts.setdefault(alert.account_id, []).append(alert)

    result = []
    for store in stores:
        counts = by_status.get(store.pk, {})
        retention = getattr(getattr(store, "feed_config", None), "retention", None)
        result.append({
            "store": store,
            "url": reverse("admin:integration_account_change", args=[store.pk]),
            "counts": [(label, counts.get(value, 0), value) for value, label in SyncStatus.choices],
            "total": sum(counts.values()),
            "chart": hourly_chart(buckets, hourly.get(store.pk), store.name),
            "oldest_failed_age": results.duration((now - store.oldest_failed_at).total_seconds()) if store.oldest_failed_at else "",
            "oldest_failed_url": (reverse("admin:integration_order_change", args=[store.oldest_failed_order])
                                  if store.oldest_failed_order else ""),
            "failed_url": reverse("admin:integration_failedsync_changelist") + "?" + urlencode({"store": store.pk}),
            "held_updates_url": reverse("admin:integration_vtexupdate_changelist") + "?" + urlencode(
                {"account__id__exact": store.pk, "status__exact": "held"}),
            "failed_updates_url": reverse("admin:integration_failedupdate_changelist") + "?" + urlencode({"account__id__exact": store.pk}),
            "refusals_url": refusals_url(store.pk),
            "backlog_age": results.duration(store.feed_backlog_age) if store.feed_backlog_age is not None else "",
            "backlog_warning": store_ops.backlog_warning(store.feed_backlog_age, retention),
            "alerts": alerts.get(store.pk, []),
        })
    return {"stores": result, "global_alerts": alerts.get(None, []), "since": since, "now": now,
            "legend": [(name, colour) for name, colour, _ in SERIES]}


def hourly_chart(buckets, per_hour, label, width=480, height=110):
    """Syncs created per hour, stacked by outcome, as an inline SVG (every value is ours: numbers and escaped text)."""
    per_hour = per_hour or [dict.fromkeys((s[0] for s in SERIES), 0) for _ in buckets]
    totals = [sum(h.values()) for h in per_hour]
    peak = max(totals) or 1
    left, bottom, top = 34, 18, 6
    plot_h = height - bottom - top
    slot = (width - left) / len(buckets)
    bar = max(2.0, slot - 3)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="hourly-chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}: syncs created per hour, last 24 hours">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#999" stroke-width="1"/>',
             f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" fill="#666">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="#666">0</text>']
    for n, (bucket, hour, total) in enumerate(zip(buckets, per_hour, totals)):
        x = left + n * slot + 1.5
        y = top + plot_h
        detail = ", ".join(f"{hour[name]} {name}" for name, _, _ in SERIES if hour[name])
        parts.append(f'<g class="hour" data-hour="{bucket:%H}" data-total="{total}"><title>{bucket:%Y-%m-%d %H}:00 — '
                     f'{total} sync{"s" if total != 1 else ""}{": " + escape(detail) if detail else ""}</title>')
        for name, colour, _ in SERIES:
            value = hour[name]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(f'<rect class="{name}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}"/>')
        if total == 0:  # an empty hour is still a hoverable slot
            parts.append(f'<rect x="{x:.1f}" y="{top}" width="{bar:.1f}" height="{plot_h}" fill="transparent"/>')
        parts.append("</g>")
        if bucket.hour % 6 == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 4}" font-size="10" text-anchor="middle" fill="#666">{bucket:%H}:00</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def dashboard_view(model_admin, request):
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    data = dashboard_data()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Health dashboard",
        **data,
        "alerts_url": reverse("admin:integration_alert_changelist") + "?state=open",
        "time_zone": timezone.get_current_timezone_name(),
    }
    return TemplateResponse(request, "admin/integration/dashboard.html", context)

