"""What an operator can do to a store, its feed configuration and its adapter bindings.

Plain functions, called by the admin's actions and views and by tests; each returns a `Result`
with one message for one store or binding. VTEX and adapter errors are caught and told, never
raised: an action on ten stores reports on each of them. Nothing here holds a database
transaction across an HTTP call.
"""
import copy
import difflib
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from integration.models import (
    Account, AdapterBinding, Alert, AlertKind, FeedConfiguration, FeedEvent, FilterType, Order, OrderSync,
    RoutingRule, SyncStatus,
)
from integration.expressions import evaluate_expression, expression_syntax_error  # noqa: F401  (moved there; kept importable)
from integration.queueing import enqueue
from integration.redaction import redact
from integration.vtex import errors as vtex_errors

log = logging.getLogger(__name__)

SUCCESS, WARNING, ERROR = "success", "warning", "error"
# Warn when VTEX's oldest feed message is older than this fraction of the feed's retention:
# past the retention VTEX drops it, committed or not.
BACKLOG_WARN_FRACTION = 0.5
SHARED_FEED_WARNING = ("Every consumer of this app key shares this one feed and its configuration: "
                       "whatever you change here changes it for all of them.")


@dataclass
class Result:
    """One store's (or binding's) outcome: a level for the admin message and the text."""

    subject: str
    level: str
    text: str
    data: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.level != ERROR

    @property
    def message(self):
        return f"{self.subject}: {self.text}"


def _vtex_error_text(exc):
    return f"{type(exc).__name__}: {redact(str(exc))}"


def duration(seconds):
    """'45 s', '12 min', '5.0 h', '3.2 days'."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def backlog_warning(age, retention):
    """A sentence when VTEX's oldest feed message is past BACKLOG_WARN_FRACTION of the retention."""
    if age is None or not retention or age <= BACKLOG_WARN_FRACTION * retention:
        return ""
    return (f"The oldest message in VTEX's feed is {duration(age)} old, {age / retention:.0%} of the feed's "
            f"retention ({duration(retention)}): past it VTEX drops the message, committed or not. "
            "Run a feed cycle, check that the cycle succeeds, and reconcile.")


# --- stores -----------------------------------------------------------------------------------------
def describe_feed(config):
    flt = config.get("filter") or {}
    if flt.get("type") == "FromOrders":
        what = f"FromOrders `{flt.get('expression', '')}`"
    elif flt.get("type") == "FromWorkflow":
        what = "FromWorkflow [" + ", ".join(flt.get("status") or []) + "]"
    else:
        what = "no filter (every status change)"
    parts = [what]
    if config.get("visibility_timeout") is not None:
        parts.append(f"visibility timeout {config['visibility_timeout']} s")
    if config.get("retention") is not None:
        parts.append(f"retention {duration(config['retention'])}")
    return ", ".join(parts)


def check_store_connection(account):
    """Ask VTEX for the app key's feed configuration (never *retrieve feed items*, which would
    hide events from the feed cycle for the visibility timeout) and store its backlog figures."""
    from integration.vtex.client import VtexClient

    try:
        config = VtexClient(account).get_feed_configuration()
    except vtex_errors.NotFound as exc:
        return Result(account.name, WARNING,
                      "VTEX accepted the credentials but this app key has no feed configuration "
                      f"({_vtex_error_text(exc)}). Push the feed configuration to create it.")
    except vtex_errors.VtexError as exc:
        return Result(account.name, ERROR, f"connection failed: {_vtex_error_text(exc)}")
    except Exception as exc:  # a bad base URL, an undecryptable token: tell, never crash the action
        log.exception("test connection of %s", account.account_name)
        return Result(account.name, ERROR, f"connection failed: {type(exc).__name__}: {redact(str(exc))}")
    quantity, age = config["quantity"], config["oldest_message_age"]
    Account.objects.filter(pk=account.pk).update(
        feed_backlog_quantity=quantity if isinstance(quantity, int) else None,
        feed_backlog_age=age if isinstance(age, (int, float)) else None,
        feed_backlog_checked_at=Now())
    text = f"connected. VTEX's feed for this app key: {describe_feed(config)}"
    if quantity is not None:
        text += f"; {quantity} message{'s' if quantity != 1 else ''} in the feed"
        if quantity and age is not None:
            text += f", the oldest {duration(age)} old"
    text += "."
    warning = backlog_warning(age, config.get("retention") or _local_retention(account))
    level = SUCCESS
    if warning:
        text += " " + warning
        level = WARNING
    return Result(account.name, level, text, data=config)


def _local_retention(account):
    return FeedConfiguration.objects.filter(account=account).values_list("retention", flat=True).first()


def run_feed_cycle_now(account):
    if not account.active:
        return Result(account.name, WARNING, "inactive: no feed cycle runs for it. Make it active first.")
    enqueue("integration.tasks.feed_cycle_for_account", account.pk, task_name=f"feed-cycle-now-{account.pk}")
    text = "feed cycle queued; its result shows in the store list when it has run."
    if account.intake_mode == "hook":
        text += " Note: its intake mode is 'hook', so the schedule does not poll its feed."
    return Result(account.name, SUCCESS, text)


def _go_out(waiting):
    if waiting == 1:
        return "its 1 pending sync goes out now."
    return f"its {waiting} pending syncs go out now."


def _waiting_syncs(account):
    return OrderSync.objects.filter(binding__account=account, status=SyncStatus.PENDING).count()


def pause_store(account):
    if account.paused:
        return Result(account.name, WARNING, "already paused.")
    account.set_paused(True)
    return Result(account.name, SUCCESS,
                  "paused: it keeps receiving and storing events, but sends nothing and never calls start-handling; "
                  f"its syncs wait ({_waiting_syncs(account)} pending now).")


def resume_store(account):
    from integration.tasks import enqueue_dispatch

    if not account.paused:
        return Result(account.name, WARNING, "not paused.")
    account.set_paused(False)
    waiting = _waiting_syncs(account)
    enqueue_dispatch(account.pk)
    return Result(account.name, SUCCESS, f"resumed: {_go_out(waiting)}")


def reconcile_now(account):
    """Reconcile one store now (in this request): list VTEX's ready-for-handling orders and bring in
    any the hub has no event for. The report is kept on the store."""
    from integration.pipeline.reconciliation import reconcile_account

    try:
        report = reconcile_account(account)
    except Exception as exc:  # e.g. a database error in sync_order: say so, for this store only
        log.exception("reconcile %s", account.account_name)
        return Result(account.name, ERROR, f"reconciliation failed: {type(exc).__name__}: {redact(str(exc))}")
    if report.error:
        return Result(account.name, ERROR, f"reconciliation failed: {report.error}")
    text = f"listed {report.listed} ready-for-handling orders in VTEX, brought in {len(report.brought_in)}"
    if report.brought_in:
        text += ": " + ", ".join(report.brought_in[:10]) + (" …" if len(report.brought_in) > 10 else "")
    text += "."
    if report.truncated:
        text += " The window was cut at 30 pages: lower RECONCILE_LOOKBACK_HOURS and run it again."
    return Result(account.name, WARNING if report.brought_in or report.truncated else SUCCESS, text)


def rules_outside_feed(account):
    """Routing rules whose state the feed's FromWorkflow filter never delivers: they can never fire
    from the feed. Empty for FromOrders (an expression cannot be checked statically) and for hook-only stores."""
    if account.intake_mode == "hook":
        return []
    config = FeedConfiguration.objects.filter(account=account).first()
    if config is None or config.filter_type != FilterType.FROM_WORKFLOW or not config.statuses:
        return []  # no status list: VTEX sends every change
    wanted = set(config.statuses)
    return [rule for rule in RoutingRule.objects.filter(account=account) if rule.state not in wanted]


def rules_outside_feed_message(account):
    rules = rules_outside_feed(account)
    if not rules:
        return ""
    states = ", ".join(sorted({r.state for r in rules}))
    return (f"{account.name}: the feed's FromWorkflow filter does not include {states}, so "
            f"{'this routing rule' if len(rules) == 1 else 'these routing rules'} can never fire from the feed. "
            "Add the status to the feed configuration (and push it to VTEX), or remove the rule.")


# --- feed configuration: compare, push, load ------------------------------------------------------
def normalise_feed_body(raw):
    """VTEX's feed configuration reduced to what a push sets, with one key casing.

    The GET answer adds `quantity` and the message age, and spells the retention key in either case.
    """
    if not isinstance(raw, dict):
        return None
    from integration.vtex.client import case_insensitive_get

    flt = case_insensitive_get(raw, "filter") or {}
    queue = case_insensitive_get(raw, "queue") or {}
    kind = case_insensitive_get(flt, "type")
    if kind == "FromOrders":
        body_filter = {"type": kind, "expression": case_insensitive_get(flt, "expression", ""),
                       "disableSingleFire": bool(case_insensitive_get(flt, "disableSingleFire", False))}
    elif kind == "FromWorkflow":
        body_filter = {"type": kind, "status": list(case_insensitive_get(flt, "status") or [])}
    else:
        body_filter = copy.deepcopy(flt)
    return {
        "filter": body_filter,
        "queue": {"visibilityTimeoutInSeconds": case_insensitive_get(queue, "visibilityTimeoutInSeconds"),
                  "MessageRetentionPeriodInSeconds": case_insensitive_get(queue, "MessageRetentionPeriodInSeconds")},
    }


def _pretty(body):
    if body is None:
        return "(no feed configuration)\n"
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class FeedComparison:
    """The local and the remote feed configuration of one store, side by side."""

    account: Account
    local: dict
    remote: dict | None = None        # normalised; None when VTEX has none
    remote_raw: dict | None = None
    error: str = ""                   # VTEX could not be asked (not a 404)
    local_errors: list = field(default_factory=list)

    @property
    def same(self):
        return self.remote is not None and self.remote == self.local

    def diff(self, direction):
        """Unified diff lines: 'push' goes from VTEX's to the hub's, 'load' from the hub's to VTEX's."""
        if direction == "push":
            before, after, names = self.remote, self.local, ("VTEX now", "after the push (the hub's)")
        else:
            before, after, names = self.local, self.remote, ("the hub now", "after loading (VTEX's)")
        return list(difflib.unified_diff(_pretty(before).splitlines(), _pretty(after).splitlines(),
                                         fromfile=names[0], tofile=names[1], lineterm="", n=20))

    @property
    def local_json(self):
        return _pretty(self.local)

    @property
    def remote_json(self):
        return _pretty(self.remote)


def compare_feed_configuration(account):
    from integration.vtex.client import VtexClient

    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    comparison = FeedComparison(account=account, local=config.to_vtex())
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        comparison.local_errors = [f"{k}: {m}" for k, msgs in exc.message_dict.items() for m in msgs]
    try:
        remote = VtexClient(account).get_feed_configuration()
    except vtex_errors.NotFound:
        return comparison
    except vtex_errors.VtexError as exc:
        comparison.error = _vtex_error_text(exc)
        return comparison
    comparison.remote_raw = remote["raw"]
    comparison.remote = normalise_feed_body(remote["raw"])
    return comparison


def push_feed_configuration(account):
    """Create or update VTEX's feed configuration from the hub's; records what was pushed."""
    from integration.vtex.client import VtexClient

    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(m)}" for k, m in exc.message_dict.items())
        return Result(account.name, ERROR, f"not pushed: the feed configuration is not valid ({problems}).")
    body = config.to_vtex()
    try:
        VtexClient(account).save_feed_configuration(body)
    except vtex_errors.VtexError as exc:
        return Result(account.name, ERROR, f"VTEX refused the feed configuration: {_vtex_error_text(exc)}")
    FeedConfiguration.objects.filter(pk=config.pk).update(last_pushed_at=timezone.now(), last_pushed_body=body)
    return Result(account.name, SUCCESS, f"feed configuration pushed to VTEX: {describe_feed(_flat(body))}.", data=body)


def _flat(body):
    queue = body.get("queue") or {}
    return {"filter": body.get("filter"), "visibility_timeout": queue.get("visibilityTimeoutInSeconds"),
            "retention": queue.get("MessageRetentionPeriodInSeconds")}


def load_feed_configuration(account):
    """Overwrite the hub's feed configuration with VTEX's. Values the hub would not accept (an
    unknown status, a retention out of bounds) are loaded as they are and reported."""
    from integration.vtex.client import VtexClient

    try:
        remote = VtexClient(account).get_feed_configuration()
    except vtex_errors.NotFound:
        return Result(account.name, WARNING, "VTEX has no feed configuration for this app key: nothing loaded.")
    except vtex_errors.VtexError as exc:
        return Result(account.name, ERROR, f"could not read VTEX's feed configuration: {_vtex_error_text(exc)}")
    body = normalise_feed_body(remote["raw"])
    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    flt = body["filter"]
    if flt.get("type") == "FromOrders":
        config.filter_type = FilterType.FROM_ORDERS
        config.expression = flt.get("expression") or ""
        config.disable_single_fire = bool(flt.get("disableSingleFire"))
    else:  # FromWorkflow, or no filter (= every status change)
        config.filter_type = FilterType.FROM_WORKFLOW
        config.statuses = list(flt.get("status") or [])
        config.expression = ""
    for attr, value in (("visibility_timeout", body["queue"]["visibilityTimeoutInSeconds"]),
                        ("retention", body["queue"]["MessageRetentionPeriodInSeconds"])):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            setattr(config, attr, value)
    config.save()
    text = f"loaded VTEX's feed configuration: {describe_feed(_flat(body))}."
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(m)}" for k, m in exc.message_dict.items())
        return Result(account.name, WARNING, text + f" The hub would not push it as it is: {problems}", data=body)
    return Result(account.name, SUCCESS, text, data=body)


def latest_order_snapshot(account):
    return (Order.objects.filter(account=account, snapshot__isnull=False).order_by("-created_at", "-pk")
            .values_list("snapshot", flat=True).first())


# --- adapter bindings ---------------------------------------------------------------------------------
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def breaker_state(binding, now=None):
    """closed: calls go out; open: the ERP is not called until `breaker_open_until`;
    half-open: the open period is over and the next call is a probe that decides."""
    now = now or timezone.now()
    if binding.breaker_failures < settings.BREAKER_THRESHOLD:
        return CLOSED
    if binding.breaker_open_until is not None and binding.breaker_open_until > now:
        return OPEN
    return HALF_OPEN


def _binding_subject(binding):
    return f"{binding.account.name} → {binding.name or binding.adapter_key}"


def check_binding_connection(binding):
    from integration.plugins.contract import AdapterError

    subject = _binding_subject(binding)
    try:
        adapter = binding.build_adapter()
    except Exception as exc:
        return Result(subject, ERROR, f"cannot build the adapter: {type(exc).__name__}: {redact(str(exc))}")
    try:
        text = adapter.check_connection()
    except AdapterError as exc:
        kind = "permanent" if exc.permanent else "transient"
        return Result(subject, ERROR, f"connection check failed ({kind}): {exc}")
    except Exception as exc:  # an adapter bug must not break the admin
        return Result(subject, ERROR, f"connection check raised {type(exc).__name__}: {redact(str(exc))}")
    finally:
        try:
            adapter.close()
        except Exception:
            log.exception("closing adapter %s", binding.adapter_key)
    return Result(subject, SUCCESS, redact(str(text or "ok")))


def pause_binding(binding):
    subject = _binding_subject(binding)
    if not binding.enabled:
        return Result(subject, WARNING, "already paused.")
    AdapterBinding.objects.filter(pk=binding.pk).update(enabled=False)
    binding.enabled = False
    waiting = OrderSync.objects.filter(binding=binding, status=SyncStatus.PENDING).count()
    return Result(subject, SUCCESS, f"paused: its syncs are held until it is resumed ({waiting} pending now).")


def resume_binding(binding):
    from integration.tasks import enqueue_dispatch

    subject = _binding_subject(binding)
    if binding.enabled:
        return Result(subject, WARNING, "not paused.")
    AdapterBinding.objects.filter(pk=binding.pk).update(enabled=True)
    binding.enabled = True
    waiting = OrderSync.objects.filter(binding=binding, status=SyncStatus.PENDING).count()
    enqueue_dispatch(binding.account_id)
    return Result(subject, SUCCESS, f"resumed: {_go_out(waiting)}")


def reset_breaker(binding):
    """Close the circuit breaker by hand (the ERP is known to be back) and close its alert."""
    from integration.alerts import close_alert
    from integration.tasks import enqueue_dispatch

    subject = _binding_subject(binding)
    state = breaker_state(binding)
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=0, breaker_open_until=None)
    binding.breaker_failures, binding.breaker_open_until = 0, None
    close_alert(AlertKind.BREAKER_OPEN, f"binding-{binding.pk}", "The circuit breaker was reset by an operator.")
    enqueue_dispatch(binding.account_id)
    if state == CLOSED:
        return Result(subject, WARNING, "the circuit breaker was already closed; its failure count is back to 0.")
    return Result(subject, SUCCESS, f"circuit breaker reset (was {state}): calls go out again.")


# --- health figures ------------------------------------------------------------------------------------
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
