"""Operational records: alert episodes and VTEX response counters."""
from django.db import models
from django.db.models import Q

from integration.models.accounts import Account


class AlertKind(models.TextChoices):
    CYCLE_FAILING = "cycle_failing", "Feed cycle failing"
    PENDING_TOO_OLD = "pending_too_old", "Oldest pending sync too old"
    HOOK_SILENT = "hook_silent", "Hook silent"
    FEED_BACKLOG = "feed_backlog", "VTEX feed backlog too old"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open"
    UPDATES_FAILED = "updates_failed", "Updates to VTEX failed"
    UPDATES_HELD = "updates_held", "Updates to VTEX held too long"
    CANCELLATION_REFUSED = "cancellation_refused", "Cancellation refused by the ERP"


class Alert(models.Model):
    """One episode of a condition: opened once, recovered once."""

    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    subject = models.CharField(max_length=200, help_text="What the alert is about: a store or a binding.")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    message = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    recovery_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "subject"], condition=Q(resolved_at__isnull=True), name="one_open_alert")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.subject}"


class VtexResponseCount(models.Model):
    """VTEX answers by store, route and status code, flushed by each task (for /metrics)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=40)
    code = models.CharField(max_length=10)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "route", "code"], name="uniq_response_count")]
