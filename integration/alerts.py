"""Alerts: conditions an operations lead must hear about, each announced once per episode.

An episode opens when a condition starts to hold (one open Alert row per kind and subject,
guarded by a partial unique constraint) and is announced through the `alert_changed` observer
hook; when the condition clears, the episode closes and its recovery is announced.
"""
import logging
import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from integration.models import Account, AdapterBinding, Alert, AlertKind, OrderSync, SyncStatus
from integration.pipeline import breaker
from integration.pipeline.vtex_access import client_for
from integration.plugins.events import AlertInfo
from integration.plugins.manager import notify
from integration.vtex.errors import VtexError

log = logging.getLogger(__name__)


def open_alert(kind, subject, message, account=None):
    """Open an episode unless one is open already. Returns the new Alert, or None."""
    if Alert.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, subject=subject, message=message[:2000], account=account)
    except IntegrityError:  # another worker opened it a moment ago
        return None
    log.warning("alert opened: %s %s: %s", kind, subject, message)
    notify("alert_changed", alert=AlertInfo.of(alert), recovered=False)
    return alert


def close_alert(kind, subject, message=""):
    alert = Alert.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).first()
    if alert is None:
        return None
    if not Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=timezone.now(), recovery_message=message[:2000]):
        return None
    alert.refresh_from_db()
    log.info("alert recovered: %s %s", kind, subject)
    notify("alert_changed", alert=AlertInfo.of(alert), recovered=True)
    return alert


def set_condition(kind, subject, holds, message, account=None, recovery=""):
    if holds:
        return open_alert(kind, subject, message, account)
    return close_alert(kind, subject, recovery)


def evaluate_cycle_failures(account):
    n = settings.ALERT_CYCLE_FAILURES
    failures = Account.objects.filter(pk=account.pk).values_list("consecutive_cycle_failures", flat=True).first() or 0
    set_condition(AlertKind.CYCLE_FAILING, account.account_name, failures >= n,
                  f"The feed cycle of {account.name} failed {failures} times in a row: {account.last_cycle_error or 'see the store page'}",
                  account, "The feed cycle succeeds again.")


def evaluate_all(now=None):
    """The periodic check of every condition that is not driven by an event."""
    now = now or timezone.now()
    for account in Account.objects.filter(active=True):
        evaluate_cycle_failures(account)
        oldest = (OrderSync.objects.filter(order__account=account, status=SyncStatus.PENDING)
                  .aggregate(m=Min("created_at"))["m"])
        age = (now - oldest).total_seconds() if oldest else 0
        set_condition(AlertKind.PENDING_TOO_OLD, account.account_name, age > settings.ALERT_PENDING_AGE_SECONDS,
                      f"{account.name}: the oldest pending sync is {int(age // 60)} minutes old.", account,
                      "No pending sync is older than the threshold any more.")
        if account.intake_mode in ("hook", "both"):
            since = account.last_hook_at or account.created_at
            silent = (now - since).total_seconds()
            set_condition(AlertKind.HOOK_SILENT, account.account_name, silent > settings.ALERT_HOOK_SILENT_SECONDS,
                          f"{account.name}: no hook notification for {int(silent // 60)} minutes (VTEX deletes a hook silent for 3 days).",
                          account, "Hook notifications arrive again.")
        backlog_age = account.feed_backlog_age
        if backlog_age is not None:
            set_condition(AlertKind.FEED_BACKLOG, account.account_name, backlog_age > settings.ALERT_FEED_BACKLOG_SECONDS,
                          f"{account.name}: the oldest message in VTEX's feed is {int(backlog_age // 60)} minutes old.",
                          account, "VTEX's feed backlog is back under the threshold.")
    evaluate_failed_updates()
    evaluate_held_updates(now)
    evaluate_cancellation_refusals()
    for binding in AdapterBinding.objects.select_related("account"):
        set_condition(AlertKind.BREAKER_OPEN, f"binding-{binding.pk}", breaker.is_open(binding, now),
                      f"{binding}: the circuit breaker is open after repeated failures; its syncs are held.", binding.account,
                      "The adapter answers again; the circuit breaker closed.")


def evaluate_failed_updates():
    """A store with updates to VTEX (invoices, tracking, cancels) that failed for good: the order
    stays un-invoiced in VTEX until someone acts, so it is an alert like a failing feed."""
    from django.db.models import Count

    from integration.models import UpdateStatus, VtexUpdate

    failed = dict(VtexUpdate.objects.filter(status=UpdateStatus.FAILED).order_by().values_list("account_id").annotate(n=Count("pk")))
    for account in Account.objects.filter(active=True):
        n = failed.get(account.pk, 0)
        set_condition(AlertKind.UPDATES_FAILED, account.account_name, n > 0,
                      f"{account.name}: {n} update{'s' if n != 1 else ''} to VTEX (invoice, tracking, cancel) failed; see Failed updates.",
                      account, "No failed update to VTEX any more.")


def evaluate_held_updates(now=None):
    """Updates to VTEX held longer than ALERT_PENDING_AGE_SECONDS, like the oldest pending sync:
    an invoice is held until start-handling is done and tracking until its invoice is sent, which
    takes seconds; one held for an hour waits on something that is not going to happen by itself
    (start-handling abandoned or failed, an invoice that never came)."""
    from integration.models import UpdateStatus, VtexUpdate

    now = now or timezone.now()
    oldest = dict(VtexUpdate.objects.filter(status=UpdateStatus.HELD).order_by().values_list("account_id")
                  .annotate(m=Min("created_at")))
    for account in Account.objects.filter(active=True):
        since = oldest.get(account.pk)
        age = (now - since).total_seconds() if since else 0
        set_condition(AlertKind.UPDATES_HELD, account.account_name, age > settings.ALERT_PENDING_AGE_SECONDS,
                      f"{account.name}: an update to VTEX has been held for {int(age // 60)} minutes; its reason is on the "
                      "updates list (filter: held).", account, "No update to VTEX is held longer than the threshold any more.")


def evaluate_cancellation_refusals():
    """Cancellation requests the ERP refused: VTEX's API has no call for a refusal, so until
    someone declines the request in VTEX's admin (or the ERP invoices the order) the marketplace
    waits. Open while any such order is neither canceled nor invoiced."""
    from django.db.models import Count

    from integration.pipeline.update_intake import refusals_awaiting_decision

    refused = dict(refusals_awaiting_decision().order_by().values_list("account_id").annotate(n=Count("pk")))
    for account in Account.objects.filter(active=True):
        n = refused.get(account.pk, 0)
        set_condition(AlertKind.CANCELLATION_REFUSED, account.account_name, n > 0,
                      f"{account.name}: the ERP refused {n} cancellation request{'s' if n != 1 else ''}; decline "
                      f"{'them' if n != 1 else 'it'} in VTEX's admin (the order page says why).", account,
                      "No refused cancellation request waits for a decision any more.")


def refresh_feed_backlogs():
    """Ask VTEX for each store's feed backlog (get feed configuration, never retrieve)."""
    for account in Account.objects.filter(active=True, intake_mode__in=["feed", "both"]):
        try:
            config = client_for(account).get_feed_configuration()
            Account.objects.filter(pk=account.pk).update(
                feed_backlog_quantity=_number_or_none(config["quantity"], whole=True),
                feed_backlog_age=_number_or_none(config["oldest_message_age"]),
                feed_backlog_checked_at=timezone.now())
        except VtexError as exc:
            log.info("feed backlog of %s unknown: %s", account.account_name, exc)
        except Exception:  # one store's surprise must not stop the check of every other store
            log.exception("feed backlog of %s could not be refreshed", account.account_name)


def _number_or_none(value, *, whole=False):
    """VTEX's figure as a number for its column, or None (unknown) when it is not one: a string,
    a number that is not finite, one too large for the column."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 <= value < 2**31:
        return None
    return int(value) if whole else float(value)


def check_alerts():
    refresh_feed_backlogs()
    evaluate_all()
