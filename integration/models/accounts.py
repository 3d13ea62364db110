"""Stores (VTEX accounts), their feed configuration and their routing rules."""
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Now

from integration.crypto import encrypted_property
from integration.vtex import statuses


class IntakeMode(models.TextChoices):
    FEED = "feed", "Feed (polling)"
    HOOK = "hook", "Hook (push)"
    BOTH = "both", "Hook, with the feed as a backup"


class EventDomains(models.TextChoices):
    BOTH = "both", "Fulfillment and Marketplace"
    FULFILLMENT = "Fulfillment", "Fulfillment only"
    MARKETPLACE = "Marketplace", "Marketplace only"


# In every VTEX account the account itself is seller "1".
OWN_SELLER_ID = "1"


def parse_seller_ids(text):
    return [part for part in (text or "").replace(",", " ").split() if part]


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
    # Which orders are this store's to fulfil (docs/stores/marketplaces.md).
    seller_ids = models.CharField(
        "sellers fulfilled here", max_length=500, default=OWN_SELLER_ID, blank=True,
        help_text='Seller ids, separated by commas or spaces (blank: "1", the VTEX account itself). An order none of '
                  'whose items is sold by one of them is skipped: not sent, no start-handling.')
    event_domains = models.CharField(
        "event domains", max_length=20, choices=EventDomains.choices, default=EventDomains.BOTH, blank=True,
        help_text="Which of VTEX's event domains route to adapters. Events of the other domain are stored and committed, "
                  "and route nothing.")
    hook_secret_ciphertext = models.TextField(editable=False, default="")
    is_demo = models.BooleanField(default=False, editable=False)

    # The feed cycle's lease: one cycle per store at a time, across processes and machines.
    lease_owner = models.CharField(max_length=64, blank=True, default="", editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Set when a dispatch of this store is queued and cleared when it starts: intake enqueues one
    # only when none is waiting (the time lets a lost task stop counting after a minute).
    dispatch_queued_until = models.DateTimeField(null=True, blank=True, editable=False)

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

    def save(self, *args, **kwargs):
        creating = self._state.adding
        if not self.hook_secret_ciphertext:
            self.hook_secret = secrets.token_urlsafe(24)
        super().save(*args, **kwargs)
        if creating:
            FeedConfiguration.objects.get_or_create(account=self)
            RoutingRule.create_defaults(self)

    def fulfilling_seller_ids(self):
        return frozenset(parse_seller_ids(self.seller_ids)) or frozenset({OWN_SELLER_ID})

    def takes_domain(self, domain):
        """Whether events of this VTEX domain route; an event without a domain always does."""
        if not domain or self.event_domains in (EventDomains.BOTH, ""):
            return True
        return domain.strip().lower() == self.event_domains.lower()

    def outside_scope_reason(self, item_seller_ids):
        """Why an order whose items are sold by `item_seller_ids` is not this store's to fulfil, or "".

        It is this store's when one of its items is sold by one of the store's sellers, or when the
        order names no seller at all (VTEX splits a purchase per seller, so an order normally has one).
        """
        ours = self.fulfilling_seller_ids()
        if not item_seller_ids or set(item_seller_ids) & ours:
            return ""
        return (f"Fulfilled by another seller: its items are sold by seller {', '.join(sorted(item_seller_ids))}, and "
                f"this store fulfils seller {', '.join(sorted(ours))}. Not sent and no start-handling; change the "
                f"store's 'sellers fulfilled here' and retry if it is this store's.")

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
    # Statuses outside VTEX's lists that an operator confirmed ("I know this status is not in
    # VTEX's lists"): accepted from then on; any other unknown one is still refused.
    confirmed_statuses = models.JSONField(default=list, blank=True, editable=False)
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
                confirmed = set(self.confirmed_statuses or [])
                bad = [s for s in statuses.unknown_statuses(self.statuses) if s not in confirmed]
                if bad:
                    errors["statuses"] = (statuses.unknown_message(bad) + ". VTEX does not check spellings; a misspelled "
                                          f"status never fires. To save it anyway, tick \"{statuses.CONFIRM_UNKNOWN_LABEL}\".")
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
    # Send now if VTEX says ready-for-handling, else wait for it (re-reading the order on a
    # schedule) and send then: for FromOrders filters, whose events mean "the expression matched".
    SEND_WHEN_READY = "send_ready", "Send once ready-for-handling"


# A rule state that matches every event, whatever its state (a FromOrders expression matched).
ANY_STATE = "*"


class RoutingRule(models.Model):
    """Which OMS state triggers which adapter action, per store."""


    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="rules")
    state = models.CharField(max_length=64, help_text=f"An OMS status, or {ANY_STATE} for any (e.g. a FromOrders expression matched).")
    action = models.CharField(max_length=10, choices=RuleAction.choices)
    state_confirmed = models.BooleanField(
        statuses.CONFIRM_UNKNOWN_LABEL, default=False,
        help_text="Tick to keep a state that is in none of VTEX's status lists (VTEX itself does not check spellings).")

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
        if self.state == ANY_STATE:
            if self.action not in (RuleAction.SEND_WHEN_READY, RuleAction.STATUS):
                raise ValidationError({"state": f"'{ANY_STATE}' (any state) goes with '{RuleAction.SEND_WHEN_READY.label}' or "
                                                f"'{RuleAction.STATUS.label}': a plain send on any state would be held whenever "
                                                "the order is not ready-for-handling yet."})
            return
        if self.state not in statuses.OMS_STATUSES and not self.state_confirmed:
            raise ValidationError({"state": statuses.unknown_message([self.state]).replace("status:", "status") +
                                   f". To save it anyway, tick \"{statuses.CONFIRM_UNKNOWN_LABEL}\"."})


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
        until = Now() + timedelta(seconds=seconds)
        updated = cls.objects.filter(account_id=account_id, route=route).update(paused_until=until, reason=reason[:200])
        if not updated:
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


class RouteCap(models.Model):
    """The rate cap (calls a minute) the hub keeps to on one store's VTEX route, shared by every
    worker: learned from VTEX's answers (`integration.pipeline.route_caps`) unless an operator
    pins it. A row appears the first time the hub calls the route."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="route_caps")
    route = models.CharField(max_length=40)
    learned_cap = models.PositiveIntegerField(
        help_text="Calls a minute, learned: raised while VTEX answers without 429, halved on a 429.")
    pinned_cap = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="pinned cap",
        help_text="Calls a minute an operator fixes for this route (0: no cap). Learning never changes it; "
                  "empty lets the hub learn.")
    changed_at = models.DateTimeField(null=True, blank=True, help_text="When the learned cap last changed.")
    change_reason = models.CharField(max_length=200, blank=True, default="")
    # The current learning window: answers without a 429 counted since `window_started_at`.
    window_started_at = models.DateTimeField()
    window_calls = models.PositiveIntegerField(default=0)
    cut_at = models.DateTimeField(null=True, blank=True, help_text="When a 429 last halved the cap.")

    class Meta:
        verbose_name = "VTEX rate cap"
        constraints = [models.UniqueConstraint(fields=["account", "route"], name="uniq_route_cap")]

    def __str__(self):
        return f"{self.route}: {self.cap_in_force}/min"

    @property
    def cap_in_force(self):
        return self.pinned_cap if self.pinned_cap is not None else self.learned_cap
