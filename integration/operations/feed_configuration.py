"""The store's feed configuration: describe it, compare the hub's with VTEX's, push it, load it;
and the routing rules its filter can never deliver."""
import copy
import difflib
import json
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils import timezone

from integration import expressions
from integration.crypto import SecretDecryptionError
from integration.models import ANY_STATE, Account, FeedConfiguration, FilterType, Order, RoutingRule, RuleAction
from integration.operations.results import ERROR, SUCCESS, WARNING, Result, duration
from integration.pipeline.vtex_access import client_for
from integration.redaction import redact
from integration.vtex import errors as vtex_errors
from integration.vtex import statuses
from integration.vtex.client import case_insensitive_get

SHARED_FEED_WARNING = ("Every consumer of this app key shares this one feed and its configuration: "
                       "whatever you change here changes it for all of them.")


def _vtex_error_text(exc):
    return f"{type(exc).__name__}: {redact(str(exc))}"


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


def rules_outside_feed(account):
    """Routing rules whose state the feed's FromWorkflow filter never delivers: they can never fire
    from the feed. Empty for FromOrders (an expression cannot be checked statically) and for hook-only stores."""
    if account.intake_mode == "hook":
        return []
    config = FeedConfiguration.objects.filter(account=account).first()
    if config is None or config.filter_type != FilterType.FROM_WORKFLOW or not config.statuses:
        return []  # no status list: VTEX sends every change
    wanted = set(config.statuses)
    return [rule for rule in RoutingRule.objects.filter(account=account).exclude(state=ANY_STATE) if rule.state not in wanted]


def rules_outside_feed_message(account):
    rules = rules_outside_feed(account)
    if not rules:
        return ""
    states = ", ".join(sorted({r.state for r in rules}))
    return (f"{account.name}: the feed's FromWorkflow filter does not include {states}, so "
            f"{'this routing rule' if len(rules) == 1 else 'these routing rules'} can never fire from the feed. "
            "Add the status to the feed configuration (and push it to VTEX), or remove the rule.")


def add_cancellation_request_rule(account):
    """Marketplaces: once the feed's FromWorkflow filter includes cancellation-requested, the store
    gets the rule `cancellation-requested → Status changed` (adapters that take status changes are
    asked; the ERP answers through the way back), unless a rule for that state exists already.

    Not a default of every new store: a rule outside the filter would only warn. Returns a message
    saying what was added, or "" when nothing was."""
    if account.intake_mode == "hook":
        return ""
    config = FeedConfiguration.objects.filter(account=account).first()
    if config is None or config.filter_type != FilterType.FROM_WORKFLOW or statuses.CANCELLATION_REQUESTED not in (config.statuses or []):
        return ""
    if RoutingRule.objects.filter(account=account, state=statuses.CANCELLATION_REQUESTED).exists():
        return ""
    RoutingRule.objects.get_or_create(account=account, state=statuses.CANCELLATION_REQUESTED, action=RuleAction.STATUS)
    return (f"{account.name}: the feed delivers {statuses.CANCELLATION_REQUESTED}, so the routing rule "
            f"'{statuses.CANCELLATION_REQUESTED} → {RuleAction.STATUS.label}' was added: adapters that take status "
            "changes are asked, and the ERP answers with a cancel (or an invoice to go on with the order).")


# --- feed configuration: compare, push, load ------------------------------------------------------
def normalise_feed_body(raw):
    """VTEX's feed configuration reduced to what a push sets, with one key casing.

    The GET answer adds `quantity` and the message age, and spells the retention key in either case.
    """
    if not isinstance(raw, dict):
        return None
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
    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    comparison = FeedComparison(account=account, local=config.to_vtex())
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        comparison.local_errors = [f"{k}: {m}" for k, msgs in exc.message_dict.items() for m in msgs]
    try:
        remote = client_for(account).get_feed_configuration()
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
    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(m)}" for k, m in exc.message_dict.items())
        return Result(account.name, ERROR, f"not pushed: the feed configuration is not valid ({problems}).")
    body = config.to_vtex()
    try:
        client_for(account).save_feed_configuration(body)
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
    try:
        remote = client_for(account).get_feed_configuration()
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
    added = add_cancellation_request_rule(account)
    if added:
        text += " " + added
    try:
        config.full_clean(exclude=["account"])
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(m)}" for k, m in exc.message_dict.items())
        return Result(account.name, WARNING, text + f" The hub would not push it as it is: {problems}", data=body)
    return Result(account.name, SUCCESS, text, data=body)


def latest_order_snapshot(account):
    return (Order.objects.filter(account=account, snapshot__isnull=False).order_by("-created_at", "-pk")
            .values_list("snapshot", flat=True).first())


# --- checking a FromOrders expression: the hub's JSONata and VTEX's own ------------------------------
@dataclass
class ExpressionCheck:
    """One expression tried on one document, twice: by the hub's JSONata (`local_*`) and by VTEX's
    test endpoint (`vtex_*`; `vtex_skipped` says why VTEX was not asked)."""

    local_result: object = None
    local_error: str = ""
    vtex_result: bool | None = None
    vtex_error: str = ""
    vtex_skipped: str = ""

    @property
    def local_passes(self):
        return not self.local_error and self.local_result is True

    @property
    def vtex_asked(self):
        return not self.vtex_skipped

    @property
    def disagree(self):
        """Both answered, and VTEX's engine and the hub's disagree: VTEX's decides the feed."""
        return not self.local_error and self.vtex_result is not None and self.local_passes != self.vtex_result


def check_expression(account, expression, document):
    """Evaluate a JSONata expression on a document locally (bounded, `integration.expressions`) and
    with VTEX's `POST /api/orders/expressions/jsonata` when the store's credentials allow."""
    check = ExpressionCheck()
    check.local_result, check.local_error = expressions.evaluate_expression(expression, document)
    try:
        client = client_for(account)
    except SecretDecryptionError:
        check.vtex_skipped = "VTEX was not asked: the store's app token cannot be decrypted (enter it again)."
        return check
    try:
        check.vtex_result = client.test_expression(expression, document)
    except vtex_errors.Unauthorized as exc:
        check.vtex_error = (f"VTEX refused the check ({exc.status}): the app key needs a role with OMS access "
                            "(Feed v3 and Hook Admin or view only).")
    except vtex_errors.VtexError as exc:
        check.vtex_error = f"VTEX could not check it: {_vtex_error_text(exc)}"
    return check
