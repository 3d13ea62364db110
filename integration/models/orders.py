"""Orders, the syncs that carry them to each adapter, and every attempt."""
from django.conf import settings
from django.db import models

from integration.models.accounts import Account
from integration.models.bindings import AdapterBinding
from integration.models.json_fields import CompactJSONField


class StartHandlingState(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"
    CONFLICT = "conflict", "Conflict (order had moved on)"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not called"
    # A gating send was abandoned by an operator: start-handling waits for every gating send to
    # be delivered, so it will not be called unless an operator calls it anyway.
    ABANDONED = "abandoned", "Not going to happen (a gating sync was abandoned)"


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="orders")
    order_id = models.CharField(max_length=64)
    vtex_status = models.CharField(max_length=64, blank=True, default="")
    snapshot = CompactJSONField(null=True, blank=True, help_text="The last order JSON fetched from VTEX.")
    snapshot_at = models.DateTimeField(null=True, blank=True)
    canceled = models.BooleanField(default=False)
    order_group = models.CharField(max_length=64, blank=True, default="", help_text="VTEX's orderGroup: the split orders of one purchase share it.")
    outside_scope_reason = models.TextField(blank=True, default="", help_text="Why the store does not fulfil this order (another seller's).")
    canceled_by = models.CharField(max_length=200, blank=True, default="", help_text="Who canceled it through the hub (ERP, operator); blank when VTEX did.")
    cancellation_refusal = models.TextField(
        blank=True, default="",
        help_text="The ERP refused the marketplace's cancellation request: when, who and why. VTEX's API has no call "
                  "for a refusal: decline the request in VTEX's admin (or the ERP invoices the order).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Dispatch lease: syncs of one order are worked by one worker at a time, so a send and a
    # cancel never race and the order is fetched once per batch.
    claimed_by = models.CharField(max_length=64, blank=True, default="", editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    start_handling_state = models.CharField(max_length=10, choices=StartHandlingState.choices, default=StartHandlingState.PENDING)
    start_handling_due_at = models.DateTimeField(null=True, blank=True, help_text="Set once every gating send succeeded.")
    start_handling_attempts = models.PositiveIntegerField(default=0)
    start_handling_at = models.DateTimeField(null=True, blank=True)
    start_handling_record = models.TextField(blank=True, default="")
    start_handling_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
        help_text="The operator who decided start-handling's fate by hand: abandoned a gating sync, or called it anyway.")
    pii_scrubbed_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="When customer data was removed from the snapshot.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "order_id"], name="uniq_order")]
        indexes = [
            models.Index(fields=["start_handling_state", "start_handling_due_at"], name="order_sh_due"),
            # The admin's exact search by order id, whatever the store (the unique key leads with the store).
            models.Index(fields=["order_id"], name="order_order_id"),
            models.Index(fields=["account", "order_group"], name="order_group"),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return self.order_id

    @property
    def vtex_admin_url(self):
        return f"https://{self.account.account_name}.myvtex.com/admin/orders/{self.order_id}"

    @property
    def group_id(self):
        """VTEX's orderGroup, or, before the order was fetched, the id without its `-NN` suffix."""
        if self.order_group:
            return self.order_group
        head, sep, tail = self.order_id.rpartition("-")
        return head if sep and head and tail.isdigit() else ""

    def group_siblings(self):
        """The other orders of the same purchase (split per seller or delivery) the hub knows."""
        group = self.group_id
        if not group:
            return Order.objects.none()
        return (Order.objects.filter(account_id=self.account_id)
                .filter(models.Q(order_group=group) | models.Q(order_id__startswith=f"{group}-"))
                .exclude(pk=self.pk).order_by("order_id"))


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"  # one word for a successful delivery, in the admin and the docs
    FAILED = "failed", "Failed"
    HELD = "held", "Held for the operator"
    SKIPPED = "skipped", "Skipped"
    DELIVERED_BY_HAND = "delivered_by_hand", "Resolved: delivered by hand"
    ABANDONED = "abandoned", "Resolved: abandoned"


DELIVERED_STATUSES = (SyncStatus.SUCCEEDED, SyncStatus.DELIVERED_BY_HAND)


class OrderSync(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="syncs")
    binding = models.ForeignKey(AdapterBinding, on_delete=models.CASCADE, related_name="syncs")
    action = models.CharField(max_length=10)
    state = models.CharField(max_length=64, blank=True, default="", help_text="The OMS state, for status actions.")
    status = models.CharField(max_length=20, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    hold_reason = models.TextField(blank=True, default="")
    # A send routed by "send once ready-for-handling": while VTEX says another status it stays
    # pending and re-reads the order on READY_WAIT_SCHEDULE, counting its checks here.
    wait_for_ready = models.BooleanField(default=False)
    ready_checks = models.PositiveIntegerField(default=0)
    erp_reference = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order", "action", "binding", "state"], name="uniq_sync")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="sync_due"),
            models.Index(fields=["status", "updated_at"], name="sync_status_updated"),
            # The failed and held sync lists: one status, newest first.
            models.Index(fields=["status", "created_at"], name="sync_status_created"),
        ]
        ordering = ["-created_at", "-id"]
        verbose_name = "order sync"

    def __str__(self):
        return f"{self.order.order_id} {self.action} → {self.binding}"

    @property
    def idempotency_key(self):
        """Stable across retries: the same sync always carries the same key."""
        suffix = f":{self.state}" if self.state else ""
        return f"vtexhub:{self.order.account.account_name}:{self.order.order_id}:{self.action}{suffix}:b{self.binding_id}"


class FailedSync(OrderSync):
    class Meta:
        proxy = True
        verbose_name = "failed sync"


class HeldSync(OrderSync):
    class Meta:
        proxy = True
        verbose_name = "held sync"


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Delivered"  # one word for a successful delivery, in the admin and the docs
    TRANSIENT = "transient", "Transient error"
    PERMANENT = "permanent", "Permanent error"
    SKIPPED = "skipped", "Skipped"
    HELD = "held", "Held"


class SyncAttempt(models.Model):
    sync = models.ForeignKey(OrderSync, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    request_excerpt = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["sync", "number", "id"]
        verbose_name = "sync attempt"
