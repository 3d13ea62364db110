"""What an operator can do to a store: test its connection, run its feed cycle, pause, resume,
reconcile, and (a sandbox store only) create test orders.

Plain functions, called by the admin's actions and views and by tests; each returns a `Result`
with one message for one store. VTEX errors are caught and told, never raised: an action on ten
stores reports on each of them. Nothing here holds a database transaction across an HTTP call.
"""
import logging
from urllib.parse import urlsplit

import requests
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


TEST_ORDERS = 5
# VTEX's own hosts: a store pointing at one of these is a real VTEX account, whatever its override.
VTEX_HOST_SUFFIXES = (".vtexcommercestable.com.br", ".vtexcommercebeta.com.br", ".vtexcommerce.com.br", ".myvtex.com",
                      ".vtex.com", ".vtex.com.br")
SANDBOX_TIMEOUT = (3.05, 10)  # seconds: connect, read (the admin waits for this, so it is short)


def may_be_sandbox(account):
    """True when the store's API base URL override points somewhere other than VTEX's own hosts."""
    host = (urlsplit(account.api_base_url or "").hostname or "").lower()
    return bool(host) and not any(host.endswith(suffix) or host == suffix[1:] for suffix in VTEX_HOST_SUFFIXES)


def create_sandbox_orders(account, count=TEST_ORDERS):
    """Ask the VTEX sandbox this store points at (`python -m vtex_sandbox`) to create `count`
    ready-for-handling orders for the store's app key, so an operator sees orders flow.

    Only a store with an API base URL override is asked, and only the sandbox's own control route
    (`POST /_sandbox/orders`, no credentials): a real VTEX account has no such route, and an order
    created there would be a real order. The app token never goes with the request.
    """
    if not may_be_sandbox(account):
        return Result(account.name, WARNING, "not a sandbox store: it talks to VTEX itself, where a test order "
                      "would be a real order.")
    url = account.api_base_url.rstrip("/") + "/_sandbox/orders"
    try:
        response = requests.post(url, json={"app_key": account.app_key, "count": count}, timeout=SANDBOX_TIMEOUT)
    except requests.RequestException as exc:
        return Result(account.name, ERROR, f"the sandbox at {account.api_base_url} did not answer ({type(exc).__name__}).")
    if response.status_code == 404:
        return Result(account.name, WARNING, f"{account.api_base_url} has no sandbox control API (/_sandbox/orders): "
                      "this store's API base URL is not a VTEX sandbox.")
    try:
        order_ids = response.json()["order_ids"] if response.ok else None
    except (ValueError, KeyError, TypeError):
        order_ids = None
    if not isinstance(order_ids, list):
        return Result(account.name, ERROR, f"the sandbox answered HTTP {response.status_code}: "
                      f"{redact(response.text[:300])}")
    queueing.enqueue_feed_cycle(account.pk)  # the orders reach the feed now; take them in at once
    return Result(account.name, SUCCESS, f"the sandbox created {len(order_ids)} test order"
                  f"{'s' if len(order_ids) != 1 else ''} ({', '.join(map(str, order_ids[:5]))}"
                  f"{', …' if len(order_ids) > 5 else ''}); a feed cycle takes them in now.")
