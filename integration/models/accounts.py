"""Stores (VTEX accounts), their feed configuration and their routing rules."""
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now

from integration.crypto import encrypted_property
from integration.vtex import statuses


class IntakeMode(models.TextChoices):
    FEED = "feed", "Feed (polling)"
    HOOK = "hook", "Hook (push)"
    BOTH = "both", "Hook, with the feed as a backup"


class Account(models.Model):
    name = models.CharField("display name", max_length=120)
    account_name = models.CharField("VTEX account name", max_length=100, help_text="The {account} in https://{account}.vtexcommercestable.com.br")
    environment = models.CharField(max_length=100, default="vtexcommercestable")
    app_key = models.CharField("app key", max_length=200, unique=True, help_text="One feed per app key: two stores sharing a key would steal each other's events.")
    app_token_ciphertext = models.TextField(editable=False, default="")
    api_base_url = models.URLField("API base URL override", blank=True, help_text="Leave blank for VTEX. Set for the sandbox or a proxy.")
    active = models.BooleanField(default=True, help_text="Inactive stores are neither polled nor dispatched.")
    paused = models.BooleanField(default=False, help_text="A paused store keeps receiving events but sends nothing; its syncs wait.")
    intake_mode = models.CharField(max_length=10, choices=IntakeMode.choices, default=IntakeMode.FEED)
    call_start_handling = models.BooleanField(default=True, help_text="Off when the WMS calls start-handling itself.")
    hook_secret_ciphertext = models.TextField(editable=False, default="")
    is_demo = models.BooleanField(default=False, editable=False)

    # The feed cycle's lease: one cycle per store at a time, across processes and machines.
    lease_owner = models.CharField(max_length=64, blank=True, default="", editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    last_cycle_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_cycle_ok = models.BooleanField(null=True, editable=False)
    last_cycle_error = models.TextField(blank=True, default="", editable=False)
    last_cycle_summary = models.JSONField(default=dict, blank=True, editable=False)
    consecutive_cycle_failures = models.PositiveIntegerField(default=0, editable=False)
    last_hook_at = models.DateTimeField(null=True, blank=True, editable=False)
    # VTEX's own backlog for this app key's feed, from *get feed configuration*.
    feed_backlog_quantity = models.IntegerField(null=True, blank=True, editable=False)
    feed_backlog_age = models.FloatField(null=True, blank=True, editable=False, help_text="Seconds; age of the oldest message in VTEX's feed.")
    feed_backlog_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_reconcile_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_reconcile_report = models.JSONField(default=dict, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    app_token = encrypted_property("app_token_ciphertext")
    hook_secret = encrypted_property("hook_secret_ciphertext")

    class Meta:
        ordering = ["name"]
        verbose_name = "store"

    def __str__(self):
        return self.name

    @property
    def base_url(self):
        if self.api_base_url:
            return self.api_base_url.rstrip("/")
        return f"https://{self.account_name}.{self.environment}.com.br"

    @property
    def vtex_admin_url(self):
        return f"https://{self.account_name}.myvtex.com/admin"

    def save(self, *args, **kwargs):
        creating = self._state.adding
        if not self.hook_secret_ciphertext:
            self.hook_secret = secrets.token_urlsafe(24)
        super().save(*args, **kwargs)
        if creating:
            FeedConfiguration.objects.get_or_create(account=self)
            RoutingRule.create_defaults(self)

    def set_paused(self, paused):
        Account.objects.filter(pk=self.pk).update(paused=paused)
        self.paused = paused


class FilterType(models.TextChoices):
    FROM_WORKFLOW = "FromWorkflow", "FromWorkflow (status list)"
    FROM_ORDERS = "FromOrders", "FromOrders (JSONata expression)"


def default_feed_statuses():
    return [statuses.READY_FOR_HANDLING, statuses.CANCELED]


class FeedConfiguration(models.Model):
    MIN_RETENTION, MAX_RETENTION = 345600, 1209600
    MIN_VISIBILITY, MAX_VISIBILITY = 1, 43200

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="feed_config")
    filter_type = models.CharField(max_length=20, choices=FilterType.choices, default=FilterType.FROM_WORKFLOW)
    statuses = models.JSONField(default=default_feed_statuses, blank=True, help_text="OMS statuses, exact spellings.")
    expression = models.TextField(blank=True, default="", help_text="JSONata, for FromOrders.")
    disable_single_fire = models.BooleanField(default=False)
    visibility_timeout = models.PositiveIntegerField(default=250, help_text="Seconds a retrieved item stays hidden before VTEX offers it again.")
    retention = models.PositiveIntegerField(default=345600, help_text="Seconds VTEX keeps an item (4 to 14 days).")
    last_pushed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_pushed_body = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "feed configuration"

    def __str__(self):
        return f"Feed configuration of {self.account}"

    def clean(self):
        errors = {}
        if self.filter_type == FilterType.FROM_WORKFLOW:
            if not isinstance(self.statuses, list) or not all(isinstance(s, str) for s in self.statuses):
                errors["statuses"] = "A list of status names."
            else:
                bad = statuses.unknown_statuses(self.statuses)
                if bad:
                    hints = []
                    for s in bad:
                        guess = statuses.suggest(s)
                        hints.append(f"'{s}' (did you mean '{guess}'?)" if guess else f"'{s}'")
                    errors["statuses"] = "Unknown OMS status: " + ", ".join(hints) + ". VTEX does not check spellings; a misspelled status never fires."
            if self.expression:
                errors["expression"] = "FromWorkflow takes statuses, not an expression (VTEX answers 409 to a mix)."
        elif not self.expression.strip():
            errors["expression"] = "FromOrders needs a JSONata expression."
        if not self.MIN_VISIBILITY <= self.visibility_timeout <= self.MAX_VISIBILITY:
            errors["visibility_timeout"] = f"Between {self.MIN_VISIBILITY} and {self.MAX_VISIBILITY} seconds."
        if not self.MIN_RETENTION <= self.retention <= self.MAX_RETENTION:
            errors["retention"] = f"Between {self.MIN_RETENTION} (4 days) and {self.MAX_RETENTION} (14 days) seconds."
        if errors:
            raise ValidationError(errors)

    def to_vtex(self):
        """The body of VTEX's 'create or update feed configuration'."""
        if self.filter_type == FilterType.FROM_WORKFLOW:
            flt = {"type": "FromWorkflow", "status": list(self.statuses)}
        else:
            flt = {"type": "FromOrders", "expression": self.expression, "disableSingleFire": self.disable_single_fire}
        return {
            "filter": flt,
            "queue": {"visibilityTimeoutInSeconds": self.visibility_timeout, "MessageRetentionPeriodInSeconds": self.retention},
        }


class RuleAction(models.TextChoices):
    SEND = "send", "Send the order"
    CANCEL = "cancel", "Cancel the order"
    STATUS = "status", "Status changed"


class RoutingRule(models.Model):
    """Which OMS state triggers which adapter action, per store."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="rules")
    state = models.CharField(max_length=64)
    action = models.CharField(max_length=10, choices=RuleAction.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "state", "action"], name="uniq_rule")]
        ordering = ["state"]

    def __str__(self):
        return f"{self.state} → {self.get_action_display()}"

    @classmethod
    def create_defaults(cls, account):
        cls.objects.get_or_create(account=account, state=statuses.READY_FOR_HANDLING, action=RuleAction.SEND)
        cls.objects.get_or_create(account=account, state=statuses.CANCELED, action=RuleAction.CANCEL)

    def clean(self):
        if self.state not in statuses.OMS_STATUSES:
            guess = statuses.suggest(self.state)
            raise ValidationError({"state": f"Unknown OMS status '{self.state}'" + (f" (did you mean '{guess}'?)" if guess else "")})


class RoutePause(models.Model):
    """VTEX said 429 or 503 on this route: every worker waits until `paused_until` (database time)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="route_pauses")
    route = models.CharField(max_length=40)
    paused_until = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "route"], name="uniq_route_pause")]

    @classmethod
    def pause(cls, account_id, route, seconds, reason=""):
        from datetime import timedelta

        until = Now() + timedelta(seconds=seconds)
        updated = cls.objects.filter(account_id=account_id, route=route).update(paused_until=until, reason=reason[:200])
        if not updated:
            from django.db import IntegrityError, transaction

            try:
                with transaction.atomic():
                    cls.objects.create(account_id=account_id, route=route, paused_until=until, reason=reason[:200])
            except IntegrityError:
                cls.objects.filter(account_id=account_id, route=route).update(paused_until=until, reason=reason[:200])

    @classmethod
    def active_until(cls, account_id, route):
        return (
            cls.objects.filter(account_id=account_id, route=route, paused_until__gt=Now())
            .values_list("paused_until", flat=True)
            .first()
        )
