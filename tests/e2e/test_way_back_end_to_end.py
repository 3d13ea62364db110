"""The round trip against the sandbox over real HTTP: orders go out to a webhook ERP, the ERP posts
each invoice and tracking number to the hub's ERP API, and VTEX receives each exactly once, after
start-handling, and shows the orders invoiced with their tracking; VTEX misbehaves on the new routes."""
import time

import pytest
from django.test import Client

from integration.models import AdapterBinding, ErpToken, Order, StartHandlingState, UpdateStatus, VtexUpdate
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.pipeline.outbox import send_due
from tests.shared_fixtures import APP_KEY

ORDERS = 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_orders_go_out_and_come_back_invoiced_with_tracking(sandbox, sandbox_store, erp, settings):
    settings.SYNC_BACKOFF_SECONDS = [1]
    settings.SYNC_BACKOFF_JITTER = 0
    settings.VTEX_DEFAULT_RETRY_AFTER = 1
    settings.VTEX_RATE_LIMITS = {**settings.VTEX_RATE_LIMITS, "*": 60000}
    binding = AdapterBinding(account=sandbox_store, adapter_key="webhook", name="ERP")
    binding.apply_settings({"url": erp.url + "/orders", "signing_secret": "e2e-signing-secret-xyz"})
    binding.save()
    token = ErpToken.issue(binding, name="e2e")[1]
    order_ids = sandbox.create_orders(APP_KEY, ORDERS)
    sandbox.faults.update({
        "rate_limit": [{"route": "invoice", "count": 2, "retry_after": 1}],
        "server_error": [{"route": "invoice_tracking", "count": 2, "status": 500}],
    })
    erp_api = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    posted = set()
    started = time.monotonic()
    deadline = started + 240
    while time.monotonic() < deadline:
        run_feed_cycle(sandbox_store, budget=10)
        dispatch_due(budget=10)
        # The ERP invoices every order it received, right away (before start-handling, for some).
        received = {r["idempotency_key"].split(":")[2] for r in erp.received if ":send:" in (r["idempotency_key"] or "")}
        for order_id in sorted(received - posted):
            order = sandbox.order(APP_KEY, order_id)
            items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
            invoice = {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": f"NF-{order_id}",
                       "invoiceValue": order["value"], "items": items}
            base = f"/erp-api/e2estore/api/oms/pvt/orders/{order_id}"
            assert erp_api.post(f"{base}/invoice", invoice, content_type="application/json", **auth).status_code == 202
            tracking = {"trackingNumber": f"TRK-{order_id}", "trackingUrl": None, "courier": "Carrier", "dispatchedDate": None}
            assert erp_api.patch(f"{base}/invoice/NF-{order_id}", tracking, content_type="application/json", **auth).status_code == 202
            posted.add(order_id)
        send_due(budget=10)
        if len(posted) == ORDERS and not VtexUpdate.objects.exclude(status=UpdateStatus.SENT).exists():
            break
        time.sleep(0.3)
    elapsed = time.monotonic() - started

    stats = sandbox.stats()
    assert {stats["statuses"][oid] for oid in order_ids} == {"invoiced"}
    for oid in order_ids:
        [package] = sandbox.order(APP_KEY, oid)["packageAttachment"]["packages"]
        assert package["invoiceNumber"] == f"NF-{oid}" and package["trackingNumber"] == f"TRK-{oid}"
    # Exactly once each: every call VTEX saw, less the two it answered 429 and the two 500.
    assert stats["calls"]["invoice"] == ORDERS + 2
    assert stats["calls"]["invoice_tracking"] == ORDERS + 2
    assert stats["start_handling_ok"] == {oid: 1 for oid in order_ids}
    assert Order.objects.filter(vtex_status="invoiced", start_handling_state=StartHandlingState.DONE).count() == ORDERS
    assert VtexUpdate.objects.filter(status=UpdateStatus.SENT).count() == 2 * ORDERS
    per_order = sum(stats["calls"].values()) / ORDERS
    print(f"\nround trip: {ORDERS} orders out and back invoiced with tracking in {elapsed:.1f} s; "
          f"{per_order:.2f} VTEX calls per order ({stats['calls']})")
