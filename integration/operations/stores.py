"""What an operator can do to a store: test its connection, run its feed cycle, pause, resume,
reconcile.

Plain functions, called by the admin's actions and views and by tests; each returns a `Result`
with one message for one store. VTEX errors are caught and told, never raised: an action on ten
stores reports on each of them. Nothing here holds a database transaction across an HTTP call.
"""
import logging

from django.db.models.functions import Now

from integration import queueing
from integration.models import Account, FeedConfiguration, OrderSync, SyncStatus
from integration.operations.feed_configuration import _vtex_error_text, describe_feed
from integration.operations.results import ERROR, SUCCESS, WARNING, Result, duration, pending_go_out
from integration.pipeline.reconciliation import reconcile_account
from integration.pipeline.vtex_access import client_for
from integration.redaction import redact
from integration.vtex import errors as vtex_errors

log = logging.getLogger(__name__)

# Warn when VTEX's oldest feed message is older than this fraction of the feed's retention:
# past the retention VTEX drops it, committed or not.
BACKLOG_WARN_FRACTION = 0.5


def backlog_warning(age, retention):
    """A sentence when VTEX's oldest feed message is past BACKLOG_WARN_FRACTION of the retention."""
    if age is None or not retention or age <= BACKLOG_WARN_FRACTION * retention:
        return ""
    return (f"The oldest message in VTEX's feed is {duration(age)} old, {age / retention:.0%} of the feed's "
            f"retention ({duration(retention)}): past it VTEX drops the message, committed or not. "
            "Run a feed cycle, check that the cycle succeeds, and reconcile.")


def check_store_connection(account):
    """Ask VTEX for the app key's feed configuration (never *retrieve feed items*, which would
    hide events from the feed cycle for the visibility timeout) and store its backlog figures."""
    try:
        config = client_for(account).get_feed_configuration()
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
    queueing.enqueue_feed_cycle(account.pk, task_name=f"feed-cycle-now-{account.pk}")
    text = "feed cycle queued; its result shows in the store list when it has run."
    if account.intake_mode == "hook":
        text += " Note: its intake mode is 'hook', so the schedule does not poll its feed."
    return Result(account.name, SUCCESS, text)


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
    if not account.paused:
        return Result(account.name, WARNING, "not paused.")
    account.set_paused(False)
    waiting = _waiting_syncs(account)
    queueing.enqueue_dispatch(account.pk)
    return Result(account.name, SUCCESS, f"resumed: {pending_go_out(waiting)}")


def reconcile_now(account):
    """Reconcile one store now (in this request): list VTEX's ready-for-handling orders and bring in
    any the hub has no event for. The report is kept on the store."""
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
