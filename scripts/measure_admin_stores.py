"""Time the store list, the store page and the health dashboard on 100,000 syncs.

    DEBUG=1 .venv/bin/python scripts/measure_admin_stores.py                 # SQLite in a temporary HUB_VAR_DIR
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/adminbench2 .venv/bin/python scripts/measure_admin_stores.py

The data set is the one of `scripts/measure_admin.py` (2 stores x 2 bindings, 50,000 orders with
their VTEX JSON and one feed event each, 100,000 syncs over about a month, a few % failed, held
or pending), plus a day of recent traffic (`--recent`, 2,000 orders a store by default, so the
last 24 hours are not nearly empty) and a few open and recovered alerts. Each page is requested
5 times with the Django test client, logged in as a superuser; the median and max time and the
number of queries are printed. On a database that already holds this data set the load is
skipped (`--reload` forces it).
"""
import argparse
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import measure_admin  # noqa: E402  (the data set and the timing helper)

RECENT_PER_STORE = 2_000


def load_recent(rng, per_store):
    """A busy last day: per store, `per_store` orders created over the last 24 hours, each with a
    sync per binding (mostly delivered, some failed, held or pending) and a feed event."""
    from django.db import connection, transaction
    from django.utils import timezone

    from integration.models import Account, Alert, AlertKind, FeedEvent, Order, OrderSync, SyncStatus

    started = time.monotonic()
    auto_fields = [Order._meta.get_field("created_at"), OrderSync._meta.get_field("created_at"),
                   FeedEvent._meta.get_field("received_at")]
    for f in auto_fields:
        f.auto_now_add = False
    now = timezone.now()
    statuses = [SyncStatus.SUCCEEDED] * 85 + [SyncStatus.FAILED] * 5 + [SyncStatus.HELD] * 3 + [SyncStatus.PENDING] * 7
    try:
        for s, account in enumerate(Account.objects.order_by("pk")):
            bindings = list(account.bindings.order_by("pk"))
            with transaction.atomic():
                orders, events = [], []
                for n in range(per_store):
                    order_id = f"{1_400_000_000_000 + s * 1_000_000 + n}-01"
                    created = now - timedelta(seconds=rng.randint(0, 24 * 3600 - 1))
                    orders.append(Order(account=account, order_id=order_id, vtex_status="ready-for-handling",
                                        snapshot={"orderId": order_id, "status": "ready-for-handling", "value": 1000 + n},
                                        created_at=created))
                    events.append(FeedEvent(account=account, change_key=f"{account.pk}|{order_id}|ready-for-handling|r",
                                            event_id=f"EVR{s}-{n}", handle=f"HR{n}", state="ready-for-handling",
                                            order_id=order_id, received_at=created, committed_at=created, routed_at=created))
                Order.objects.bulk_create(orders, batch_size=500)
                FeedEvent.objects.bulk_create(events, batch_size=500)
                ids = dict(Order.objects.filter(account=account, order_id__in=[o.order_id for o in orders])
                           .values_list("order_id", "pk"))
                OrderSync.objects.bulk_create([
                    OrderSync(order_id=ids[o.order_id], binding=b, action="send", status=rng.choice(statuses),
                              created_at=o.created_at, next_attempt_at=o.created_at)
                    for o in orders for b in bindings], batch_size=1000)
            Account.objects.filter(pk=account.pk).update(
                feed_backlog_quantity=rng.randint(0, 300), feed_backlog_age=rng.choice([30.0, 250000.0]),
                feed_backlog_checked_at=now, last_cycle_at=now, last_cycle_ok=True,
                last_cycle_summary={"new": 10, "committed": 10})
            Alert.objects.create(kind=AlertKind.PENDING_TOO_OLD, subject=account.account_name, account=account,
                                 message=f"{account.name}: the oldest pending sync is 95 minutes old.")
            Alert.objects.create(kind=AlertKind.HOOK_SILENT, subject=account.account_name, account=account,
                                 message="quiet", resolved_at=now)
    finally:
        for f in auto_fields:
            f.auto_now_add = True
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reload", action="store_true", help="empty the hub's tables and load the data set again")
    parser.add_argument("--var-dir", help="SQLite only: keep the database in this directory (reused by the next run)")
    parser.add_argument("--recent", type=int, default=RECENT_PER_STORE, help="orders per store created in the last 24 h")
    args = parser.parse_args()
    measure_admin.configure(args.var_dir)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.urls import reverse

    from integration.models import Account, Alert, Order, OrderSync

    call_command("migrate", verbosity=0)
    db = settings.DATABASES["default"]
    print(f"database: {connection.vendor} {db['NAME']}")
    foreign = Account.objects.exclude(app_key__startswith="vtexappkey-bench").count()
    if foreign:
        sys.exit(f"This database holds {foreign} stores that are not the benchmark's: refusing to empty it. "
                 "Point DATABASE_URL at a database of its own (e.g. .../adminbench2).")
    expected_syncs = measure_admin.ORDERS * measure_admin.BINDINGS_PER_STORE + args.recent * measure_admin.STORES * measure_admin.BINDINGS_PER_STORE
    if args.reload or OrderSync.objects.count() != expected_syncs or not Alert.objects.exists():
        # measure_admin.load empties the tables it fills; the store's other rows go first.
        from integration.models import FeedConfiguration, RoutePause, RoutingRule, VtexResponseCount

        for model in (Alert, FeedConfiguration, RoutingRule, RoutePause, VtexResponseCount):
            model.objects.all()._raw_delete(model.objects.db)
        seconds = measure_admin.load(random.Random(6)) + load_recent(random.Random(7), args.recent)
        print(f"loaded {Order.objects.count():,} orders, {OrderSync.objects.count():,} syncs in {seconds:.1f} s")
    else:
        print(f"reusing {Order.objects.count():,} orders, {OrderSync.objects.count():,} syncs")
    counts = dict(OrderSync.objects.values_list("status").annotate(n=Count("id")).order_by())
    print("syncs by status: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))

    User = get_user_model()
    user = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin", "b@example.com", "bench-password-123")
    client = Client()
    client.force_login(user)
    store = Account.objects.order_by("pk").first()
    pages = [
        ("store list", reverse("admin:integration_account_changelist")),
        ("store page", reverse("admin:integration_account_change", args=[store.pk])),
        ("health dashboard", reverse("admin:integration_dashboard")),
        ("alerts, open", reverse("admin:integration_alert_changelist") + "?state=open"),
        ("adapter bindings", reverse("admin:integration_adapterbinding_changelist")),
        ("installed plugins", reverse("admin:integration_plugins")),
    ]
    print(f"{'page':46} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for label, url in pages:
        median, worst, queries = measure_admin.measure(client, url)
        print(f"{label:46} {median:10.1f} {worst:8.1f} {queries:8d}")


if __name__ == "__main__":
    main()
