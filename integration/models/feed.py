"""The inbox: every feed item and hook notification, stored once per change."""
from django.db import models

from integration.models.accounts import Account
from integration.models.json_fields import CompactJSONField


class EventSource(models.TextChoices):
    FEED = "feed", "Feed"
    HOOK = "hook", "Hook"
    SYNC_ORDER = "manual", "Brought in by id"
    RECONCILE = "reconcile", "Found by reconciliation"


class FeedEvent(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    # Unique per change: (store, order, state, change time). Duplicates and twins collapse here.
    change_key = models.TextField(unique=True)
    event_id = models.TextField(blank=True, default="", db_index=True)
    # Handles are opaque and long: a TextField, never a too-short varchar.
    handle = models.TextField(blank=True, default="")
    domain = models.CharField(max_length=40, blank=True, default="")
    state = models.CharField(max_length=64, blank=True, default="", db_index=True)
    last_state = models.CharField(max_length=64, blank=True, default="")
    order_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    last_change = models.CharField(max_length=40, blank=True, default="")
    current_change = models.CharField(max_length=40, blank=True, default="")
    source = models.CharField(max_length=10, choices=EventSource.choices, default=EventSource.FEED)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    duplicates = models.PositiveIntegerField(default=0, help_text="Later deliveries of the same change.")
    payload = CompactJSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why the item could not be used; kept for the operator.")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["account", "received_at"], name="event_account_received")]
        verbose_name = "feed event"

    def __str__(self):
        return f"{self.order_id or '?'} {self.state or '?'} ({self.source})"


class FeedPollerSlot(models.Model):
    """A place for one running feed poller; FEED_POLLERS of them exist.

    The poller that holds a slot's lease polls every feed-mode store (each under its own store
    lease); a poller that finds every slot taken ends at once. So the minute schedule, a cluster
    starting, and a poller handing over to its successor never add pollers beyond FEED_POLLERS,
    whatever the number of clusters.
    """

    slot = models.PositiveSmallIntegerField(unique=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "feed poller slot"

    def __str__(self):
        return f"feed poller slot {self.slot}"
