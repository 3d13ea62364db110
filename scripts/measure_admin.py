"""Time the operator admin's pages on 100,000 syncs.

    DEBUG=1 .venv/bin/python scripts/measure_admin.py                  # SQLite in a temporary HUB_VAR_DIR
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/adminbench .venv/bin/python scripts/measure_admin.py

Migrates, bulk-loads 2 stores x 2 bindings, 50,000 orders (each with its VTEX JSON and one feed
event) and 100,000 syncs (a few % failed or held, with attempts), then requests each page 5 times
with the Django test client, logged in as a superuser, and prints the median and max time and the
number of queries. On a database that already holds exactly this data set the load is skipped
(`--reload` forces it; it empties the hub's tables first).
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ORDERS = 50_000
STORES = 2
BINDINGS_PER_STORE = 2
RUNS = 5
BATCH = 2_000


def configure(var_dir=None):
    if not os.environ.get("DATABASE_URL"):
        # Never the project's own var/ database: a fresh (or the given) directory.
        os.environ["HUB_VAR_DIR"] = var_dir or tempfile.mkdtemp(prefix="hub-measure-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HUB_DEMO", "0")
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's "testserver" host in


def load(rng):
    from django.db import connection, transaction
    from django.utils import timezone

    from integration.models import (
        Account, AdapterBinding, AttemptOutcome, FeedEvent, Order, OrderSync, SyncAttempt, SyncStatus,
    )
    from tests.fake_oms import make_order

    started = time.monotonic()
    for model in (SyncAttempt, OrderSync, FeedEvent, Order, AdapterBinding, Account):
        model.objects.all()._raw_delete(model.objects.db)
    # Historic rows: keep the created_at we give them.
    auto_fields = [Order._meta.get_field("created_at"), OrderSync._meta.get_field("created_at"),
                   FeedEvent._meta.get_field("received_at")]
    for f in auto_fields:
        f.auto_now_add = False
    now = timezone.now()
    stores, bindings = [], {}
    for s in range(STORES):
        account = Account(name=f"Bench store {s}", account_name=f"benchstore{s}", app_key=f"vtexappkey-bench{s}-ABCDEF",
                          api_base_url="http://127.0.0.1:9")
        account.app_token = f"bench-token-{s}-0123456789"
        account.save()
        stores.append(account)
        bindings[account.pk] = []
        for b, name in enumerate(["ERP", "WMS"][:BINDINGS_PER_STORE]):
            binding = AdapterBinding(account=account, adapter_key="webhook", name=name, gates_start_handling=b == 0,
                                     settings={"url": f"https://{name.lower()}.example.com/orders"})
            binding.save()
            bindings[account.pk].append(binding)
    statuses = ([SyncStatus.SUCCEEDED] * 90 + [SyncStatus.FAILED] * 4 + [SyncStatus.HELD] * 2 + [SyncStatus.PENDING] * 4)
    for start in range(0, ORDERS, BATCH):
        with transaction.atomic():
            orders, events = [], []
            for n in range(start, min(start + BATCH, ORDERS)):
                account = stores[n % STORES]
                order_id = f"{1_300_000_000_000 + n}-01"
                created = now - timedelta(seconds=(ORDERS - n) * 50)  # about a month, oldest first
                snapshot = make_order(order_id, "handling", items=1 + n % 4)
                orders.append(Order(account=account, order_id=order_id, vtex_status="handling", snapshot=snapshot,
                                    snapshot_at=created, created_at=created, start_handling_state="done",
                                    start_handling_record="VTEX answered 204: the order moved to start-handling."))
                events.append(FeedEvent(account=account, change_key=f"{account.pk}|{order_id}|ready-for-handling|x",
                                        event_id=f"EV{n}", handle=f"H{n}", state="ready-for-handling", order_id=order_id,
                                        last_state="window-to-cancel", current_change=created.isoformat(),
                                        received_at=created, committed_at=created, routed_at=created))
            Order.objects.bulk_create(orders)
            FeedEvent.objects.bulk_create(events)
            ids = dict(Order.objects.filter(order_id__in=[o.order_id for o in orders]).values_list("order_id", "pk"))
            syncs = []
            for o in orders:
                for binding in bindings[o.account_id]:
                    status = rng.choice(statuses)
                    failed = status == SyncStatus.FAILED
                    syncs.append(OrderSync(
                        order_id=ids[o.order_id], binding=binding, action="send", status=status, created_at=o.created_at,
                        attempts=8 if failed else (1 if status == SyncStatus.SUCCEEDED else 0),
                        last_error="ERP answered 500: Internal Server Error (gave up after 8 attempts)" if failed else "",
                        hold_reason="VTEX says the order is 'handling', not ready-for-handling" if status == SyncStatus.HELD else "",
                        next_attempt_at=o.created_at + timedelta(minutes=5) if status == SyncStatus.PENDING else None,
                        erp_reference=f"ERP-{o.order_id}" if status == SyncStatus.SUCCEEDED else "",
                    ))
            OrderSync.objects.bulk_create(syncs)
            failed_ids = OrderSync.objects.filter(order_id__in=ids.values(), status__in=[SyncStatus.FAILED, SyncStatus.HELD]).values_list("pk", "status")
            SyncAttempt.objects.bulk_create([
                SyncAttempt(sync_id=pk, number=k, duration_ms=rng.randint(20, 3000), outcome=AttemptOutcome.TRANSIENT if st == SyncStatus.FAILED else AttemptOutcome.HELD,
                            error="ERP answered 500", request_excerpt='POST https://erp.example.com/orders {"event": "order.send", ...}',
                            response_excerpt="HTTP 500 Internal Server Error")
                for pk, st in failed_ids for k in range(1, (4 if st == SyncStatus.FAILED else 2))
            ])
    for f in auto_fields:
        f.auto_now_add = True
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh planner statistics on both databases, as autovacuum would give
    return time.monotonic() - started


def measure(client, url, runs=RUNS):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries = [], 0
    client.get(url)  # warm the caches (templates, plugin registry) once
    for _ in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(ctx.captured_queries)
    return statistics.median(times), max(times), queries


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reload", action="store_true", help="empty the hub's tables and load the data set again")
    parser.add_argument("--var-dir", help="SQLite only: keep the database in this directory (reused by the next run)")
    args = parser.parse_args()
    configure(args.var_dir)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from integration.models import Account, Order, OrderSync, SyncStatus

    call_command("migrate", verbosity=0)
    db = settings.DATABASES["default"]
    print(f"database: {connection.vendor} {db['NAME']}")
    foreign = Account.objects.exclude(app_key__startswith="vtexappkey-bench").count()
    if foreign:
        sys.exit(f"This database holds {foreign} stores that are not the benchmark's: refusing to empty it. "
                 "Point DATABASE_URL at a database of its own (e.g. .../adminbench).")
    if args.reload or OrderSync.objects.count() != ORDERS * BINDINGS_PER_STORE or Order.objects.count() != ORDERS:
        seconds = load(random.Random(6))
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
    failed = OrderSync.objects.filter(status=SyncStatus.FAILED).order_by("-created_at").values_list("order_id", "order__order_id").first()
    week_ago = quote((timezone.now() - timedelta(days=7)).isoformat())
    pages = [
        ("failed syncs", reverse("admin:integration_failedsync_changelist")),
        ("all syncs, filtered by store", reverse("admin:integration_ordersync_changelist") + f"?store={store.pk}"),
        ("one order page", reverse("admin:integration_order_change", args=[failed[0]])),
        ("held syncs", reverse("admin:integration_heldsync_changelist")),
        ("failed syncs, store + last 7 days", reverse("admin:integration_failedsync_changelist") + f"?store={store.pk}&created_at__gte={week_ago}"),
        ("all syncs, search by order id", reverse("admin:integration_ordersync_changelist") + f"?q={failed[1]}"),
        ("orders, filtered by store", reverse("admin:integration_order_changelist") + f"?account__id__exact={store.pk}"),
        ("retry-matching confirmation (failed, store)", reverse("admin:integration_failedsync_retry_matching") + f"?store={store.pk}"),
    ]
    print(f"{'page':46} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for label, url in pages:
        median, worst, queries = measure(client, url)
        print(f"{label:46} {median:10.1f} {worst:8.1f} {queries:8d}")
    measure_retry_all()


def measure_retry_all():
    """'Retry all matching' on every failed sync, in a transaction rolled back afterwards."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from integration.operations import syncs as operations
    from integration.models import FailedSync

    with transaction.atomic():
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            outcome = operations.retry_matching(FailedSync.objects.filter(status="failed"))
            ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    print(f"retry all {outcome.changed:,} failed syncs (rolled back): {ms:.0f} ms, {len(ctx.captured_queries)} queries")


if __name__ == "__main__":
    main()
