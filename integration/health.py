"""`/health/` for load balancers and `/metrics` in Prometheus text format."""
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from integration.models import Account, Order, OrderSync, RoutePause, StartHandlingState, SyncStatus, VtexResponseCount, VtexUpdate
from integration.pipeline.update_intake import refusals_awaiting_decision
from integration.pipeline.vtex_access import take_response_counts


# A write the check can undo: one tiny row every migrated database has, set to its own value.
_WRITE_PROBE = "UPDATE django_migrations SET applied = applied WHERE id = (SELECT MIN(id) FROM django_migrations)"
_WRITE_PROBE_WAIT_MS = 2000


class _RolledBack(Exception):
    pass


def check_database():
    """Can the database be read and written? A read-only database (a full disk, a file or replica
    that refuses writes) answers SELECT 1 while every hook and admin save fails."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return False, f"{type(exc).__name__}"
    try:
        _probe_write()
    except _RolledBack:
        return True, "ok"
    except OperationalError as exc:
        if "locked" in str(exc).lower():  # SQLite: another writer holds the lock; writable, busy
            return True, "ok"
        return False, f"cannot write: {type(exc).__name__}: {str(exc)[:120]}"
    except Exception as exc:
        return False, f"cannot write: {type(exc).__name__}: {str(exc)[:120]}"
    return True, "ok"


def _probe_write():
    sqlite = connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        if sqlite and not connection.in_atomic_block:  # wait for a busy writer briefly, not SQLite's 30 s
            cursor.execute(f"PRAGMA busy_timeout = {_WRITE_PROBE_WAIT_MS}")
        try:
            with transaction.atomic():
                with connection.cursor() as inner:
                    inner.execute(_WRITE_PROBE)
                raise _RolledBack  # leaves the atomic block: the probe is rolled back
        finally:
            if sqlite and not connection.in_atomic_block:
                cursor.execute(f"PRAGMA busy_timeout = {int(connection.settings_dict.get('OPTIONS', {}).get('timeout', 5) * 1000)}")


def check_broker():
    try:
        # Inside the try: a broken broker configuration fails the import, and that is the answer.
        from django_q.brokers import get_broker

        broker = get_broker()
        return (True, "ok") if broker.ping() else (False, "no answer")
    except Exception as exc:
        return False, f"{type(exc).__name__}"


def store_health(now=None):
    """Per active store: is its last feed cycle recent and ok?"""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.HEALTH_CYCLE_STALE_SECONDS)
    result = {}
    for account in Account.objects.filter(active=True).only("account_name", "intake_mode", "last_cycle_at", "last_cycle_ok", "paused"):
        if account.intake_mode == "hook":
            result[account.account_name] = {"ok": True, "detail": "hook intake"}
            continue
        if account.last_cycle_at is None:
            result[account.account_name] = {"ok": True, "detail": "no cycle yet"}
        elif now - account.last_cycle_at > stale_after:
            result[account.account_name] = {"ok": False, "detail": f"last feed cycle {int((now - account.last_cycle_at).total_seconds())}s ago"}
        else:
            result[account.account_name] = {"ok": bool(account.last_cycle_ok), "detail": "ok" if account.last_cycle_ok else "last feed cycle failed"}
    return result


def health_report():
    db_ok, db_detail = check_database()
    broker_ok, broker_detail = check_broker() if db_ok or settings.REDIS_URL else (False, "database down")
    stores = store_health() if db_ok else {}
    # A failing store is reported, but does not take the hub out of a load balancer: the hub is up.
    return {"ok": db_ok and broker_ok, "database": db_detail, "broker": broker_detail, "stores": stores}


def _line(name, value, **labels):
    if labels:
        inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def metrics_text():
    """Prometheus text exposition; every figure is one cheap aggregate query."""
    out = []
    out += ["# HELP vtexhub_syncs Order syncs by store and status.", "# TYPE vtexhub_syncs gauge"]
    for row in OrderSync.objects.values("order__account__account_name", "status").annotate(n=Count("id")).order_by():
        out.append(_line("vtexhub_syncs", row["n"], store=row["order__account__account_name"], status=row["status"]))
    out += ["# HELP vtexhub_syncs_due Pending syncs whose time has come (queue depth).", "# TYPE vtexhub_syncs_due gauge"]
    due = OrderSync.objects.filter(status=SyncStatus.PENDING, next_attempt_at__lte=timezone.now()).count()
    out.append(_line("vtexhub_syncs_due", due))
    out += ["# HELP vtexhub_oldest_pending_sync_age_seconds Age of the oldest pending sync.", "# TYPE vtexhub_oldest_pending_sync_age_seconds gauge"]
    oldest = OrderSync.objects.filter(status=SyncStatus.PENDING).aggregate(m=Min("created_at"))["m"]
    out.append(_line("vtexhub_oldest_pending_sync_age_seconds", int((timezone.now() - oldest).total_seconds()) if oldest else 0))
    out += ["# HELP vtexhub_start_handling Orders by start-handling state (abandoned: will not be called, a gating sync was abandoned).", "# TYPE vtexhub_start_handling gauge"]
    for row in Order.objects.values("start_handling_state").annotate(n=Count("id")).order_by():
        out.append(_line("vtexhub_start_handling", row["n"], state=row["start_handling_state"]))
    out += ["# HELP vtexhub_updates Updates to VTEX (invoices, tracking, cancels) by store and status.", "# TYPE vtexhub_updates gauge"]
    for row in VtexUpdate.objects.values("account__account_name", "status").annotate(n=Count("id")).order_by():
        out.append(_line("vtexhub_updates", row["n"], store=row["account__account_name"], status=row["status"]))
    out += ["# HELP vtexhub_cancellation_refusals Cancellation requests the ERP refused that wait for a decision in VTEX's admin.",
            "# TYPE vtexhub_cancellation_refusals gauge"]
    for row in refusals_awaiting_decision().values("account__account_name").annotate(n=Count("id")).order_by():
        out.append(_line("vtexhub_cancellation_refusals", row["n"], store=row["account__account_name"]))
    out += ["# HELP vtexhub_feed_cycle_seconds Duration of each store's last feed cycle.", "# TYPE vtexhub_feed_cycle_seconds gauge",
            "# HELP vtexhub_feed_cycle_ok 1 when the store's last feed cycle succeeded.", "# TYPE vtexhub_feed_cycle_ok gauge",
            "# HELP vtexhub_feed_cycle_failures_in_a_row Consecutive failed feed cycles.", "# TYPE vtexhub_feed_cycle_failures_in_a_row gauge"]
    for account in Account.objects.filter(active=True).only("account_name", "last_cycle_summary", "last_cycle_ok", "consecutive_cycle_failures"):
        summary = account.last_cycle_summary or {}
        out.append(_line("vtexhub_feed_cycle_seconds", round(float(summary.get("seconds", 0)), 3), store=account.account_name))
        out.append(_line("vtexhub_feed_cycle_ok", 1 if account.last_cycle_ok else 0, store=account.account_name))
        out.append(_line("vtexhub_feed_cycle_failures_in_a_row", account.consecutive_cycle_failures, store=account.account_name))
    flush_response_counts()
    out += ["# HELP vtexhub_vtex_responses_total VTEX responses by store, route and status code (429s included).",
            "# TYPE vtexhub_vtex_responses_total counter"]
    for row in VtexResponseCount.objects.select_related("account").order_by("account__account_name", "route", "code"):
        out.append(_line("vtexhub_vtex_responses_total", row.count, store=row.account.account_name, route=row.route, code=row.code))
    out += ["# HELP vtexhub_route_paused 1 while a store's VTEX route is paused after a 429/503.", "# TYPE vtexhub_route_paused gauge"]
    for pause in RoutePause.objects.filter(paused_until__gt=timezone.now()).select_related("account"):
        out.append(_line("vtexhub_route_paused", 1, store=pause.account.account_name, route=pause.route))
    return "\n".join(out) + "\n"


def flush_response_counts():
    """Add this process's VTEX response counts to the shared counters (one upsert per key)."""
    counts = take_response_counts()
    existing = set(Account.objects.filter(pk__in={k[0] for k in counts}).values_list("pk", flat=True))
    for (account_id, route, code), n in counts.items():
        if account_id not in existing:  # the store was deleted meanwhile
            continue
        counter = VtexResponseCount.objects.filter(account_id=account_id, route=route, code=code)
        if counter.update(count=F("count") + n):
            continue
        try:
            with transaction.atomic():
                VtexResponseCount.objects.create(account_id=account_id, route=route, code=code, count=n)
        except IntegrityError:
            counter.update(count=F("count") + n)
