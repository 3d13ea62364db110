"""The way back: updates from the ERP to VTEX (invoice, tracking, delivery events, cancel).

Each accepted update is one row of an outbox, stored before the ERP is answered and sent to
VTEX by the task cluster. The key of an update is (store, order, kind, invoice number): the same
key with the same body is the same update; a different body replaces it while it has not been
sent, and once it was sent becomes a new row (a correction) that VTEX's overwrite semantics allow.
`generation` numbers the rows of one key: the highest is the current one.
"""
import hashlib
import json
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from integration.models.accounts import Account
from integration.models.bindings import AdapterBinding
from integration.models.orders import AttemptOutcome, Order


class UpdateKind(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    TRACKING = "tracking", "Tracking number"
    DELIVERY = "delivery", "Delivery events"
    CANCEL = "cancel", "Cancel"


class UpdateStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    HELD = "held", "Held (waiting)"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Resolved: abandoned"
    RESOLVED = "resolved", "Resolved by hand"


class UpdateSource(models.TextChoices):
    API = "api", "ERP API"
    ADAPTER = "adapter", "Adapter"
    OPERATOR = "operator", "Operator"


class WaitingFor(models.TextChoices):
    NOTHING = "", "Nothing"
    START_HANDLING = "start_handling", "start-handling"
    INVOICE = "invoice", "the invoice"


# A body replaces the current row's while VTEX has not been sent it (or the operator gave up on it).
REPLACEABLE = (UpdateStatus.QUEUED, UpdateStatus.HELD, UpdateStatus.FAILED, UpdateStatus.ABANDONED)
OPEN_STATUSES = (UpdateStatus.QUEUED, UpdateStatus.SENDING, UpdateStatus.HELD)


def body_hash(body):
    """The same JSON, whatever its key order or spacing, has the same hash."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class VtexUpdate(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="updates")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="updates")
    kind = models.CharField(max_length=10, choices=UpdateKind.choices)
    # "" for a cancel: it has no invoice. VTEX allows up to 50 characters in practice; 100 is room.
    invoice_number = models.CharField(max_length=100, blank=True, default="")
    generation = models.PositiveIntegerField(default=0, help_text="0 for the first update of this key; a correction is the next.")
    body = models.JSONField(help_text="VTEX's body, exactly as sent.")
    body_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=UpdateStatus.choices, default=UpdateStatus.QUEUED)
    waiting_for = models.CharField(max_length=20, choices=WaitingFor.choices, blank=True, default="")
    hold_reason = models.TextField(blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True, default="", editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    vtex_receipt = models.CharField(max_length=200, blank=True, default="")
    vtex_answer = models.TextField(blank=True, default="", help_text="VTEX's last answer (an excerpt).")
    correction_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="corrections")
    source = models.CharField(max_length=10, choices=UpdateSource.choices)
    source_detail = models.CharField("who", max_length=200, blank=True, default="", help_text="The token, adapter binding or operator.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "kind", "invoice_number", "generation"], name="uniq_vtex_update"),
            models.CheckConstraint(condition=Q(kind__in=[k.value for k in UpdateKind]), name="vtex_update_kind"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="update_due"),
            models.Index(fields=["status", "created_at"], name="update_status_created"),
            models.Index(fields=["account", "status"], name="update_account_status"),
        ]
        ordering = ["-created_at", "-id"]
        verbose_name = "update to VTEX"
        verbose_name_plural = "updates to VTEX"

    def __str__(self):
        number = f" {self.invoice_number}" if self.invoice_number else ""
        return f"{self.order.order_id} {self.kind}{number}"

    @property
    def is_correction(self):
        return self.correction_of_id is not None


class FailedUpdate(VtexUpdate):
    class Meta:
        proxy = True
        verbose_name = "failed update to VTEX"
        verbose_name_plural = "failed updates to VTEX"


class UpdateAttempt(models.Model):
    update = models.ForeignKey(VtexUpdate, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    request_excerpt = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["update", "number", "id"]
        verbose_name = "update attempt"


TOKEN_PREFIX = "vhub_"


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ErpToken(models.Model):
    """A Bearer token an ERP uses on the inbound API, for one binding (and so one store).

    Only its SHA-256 is stored: the token is shown once, when it is made. Tokens are long random
    strings, so a fast hash is enough (nothing to brute-force as with passwords)."""

    binding = models.ForeignKey(AdapterBinding, on_delete=models.CASCADE, related_name="erp_tokens")
    name = models.CharField(max_length=120, blank=True, default="", help_text="What it is for, e.g. 'SAP production'.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="The first characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ERP API token"

    def __str__(self):
        return f"{self.hint}… ({self.name or self.binding})"

    @property
    def active(self):
        return self.revoked_at is None

    @classmethod
    def issue(cls, binding, name="", user=None):
        """Make a token; returns (row, the token in clear: shown once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(binding=binding, name=name[:120], token_hash=hash_token(token),
                                 hint=token[: len(TOKEN_PREFIX) + 6], created_by=user)
        return row, token
