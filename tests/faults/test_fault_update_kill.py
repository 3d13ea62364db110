"""The way back under a SIGKILL: an update the ERP API accepted (202, stored) whose sending worker
is killed mid-send is sent again by a new worker, and VTEX ends up with the invoice once.

Two kills, each of the qcluster's whole process group, while the invoice call to the sandbox is
in flight (the sandbox holds it a few seconds, shorter than SYNC_CLAIM_TTL):
1. the call never takes effect (the sandbox then drops the connection unanswered): the new
   worker's call is the only one VTEX takes;
2. the call takes effect after the worker died, so nobody recorded VTEX's answer: the new worker
   sends it again under the same invoiceNumber, which VTEX overwrites (one invoice on the order).
"""
import time

import pytest
import requests

from tests.faults.harness import APP_KEY, ACCOUNT, Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

HOLD_MS = 7000  # < SYNC_CLAIM_TTL (15 s): the held call ends before any new worker may take the update


def invoice_for(order, number):
    items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
    return {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": number,
            "invoiceValue": order["value"], "items": items}


def update_row(hub, order_id):
    rows = hub.query("SELECT u.id, u.status, u.attempts FROM integration_vtexupdate u JOIN integration_order o ON o.id = u.order_id"
                     " WHERE o.order_id = %s AND u.kind = 'invoice'", (order_id,))
    return rows[0] if rows else None


def attempts(hub, update_id):
    return hub.query("SELECT number, outcome, left(error, 200) FROM integration_updateattempt WHERE update_id = %s ORDER BY id",
                     (update_id,))


def call_in_flight(hub, update_id):
    return any(outcome == "running" for _, outcome, _ in attempts(hub, update_id))


def test_sigkill_while_an_accepted_invoice_is_being_sent_then_a_new_worker_sends_it_once():
    with Scenario("kill-while-sending-an-update", orders=2, hub_env={"VTEX_READ_TIMEOUT": "10"}) as run:
        hub, sandbox = run.hub, run.sandbox
        first, second = run.seed()
        [cluster] = run.start_clusters(1)
        hub.kick_feed_cycle()
        run.wait_for_all(180)  # delivered and start-handled: VTEX takes invoices now
        token = hub.issue_erp_token()
        web, web_url = hub.web()
        run.callback(web.stop)
        orders = {o["orderId"]: o for o in sandbox.get(f"/_sandbox/orders?app_key={APP_KEY}")}
        erp_api = requests.Session()
        erp_api.trust_env = False
        erp_api.headers["Authorization"] = f"Bearer {token}"

        def post_invoice(order_id):
            response = erp_api.post(f"{web_url}/erp-api/{ACCOUNT}/api/oms/pvt/orders/{order_id}/invoice",
                                    json=invoice_for(orders[order_id], f"NF-{order_id}"), timeout=30)
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "queued"
            return response.json()["id"]

        outcomes = {}
        for order_id, faults, took_effect in ((first, {"slow": [{"route": "invoice", "count": 1, "delay_ms": HOLD_MS}],
                                                       "drop": [{"route": "invoice", "count": 1}]}, False),
                                              (second, {"slow": [{"route": "invoice", "count": 1, "delay_ms": HOLD_MS}]}, True)):
            sandbox.faults(**faults)
            update_id = post_invoice(order_id)  # stored, and a send is queued at once
            wait_until(lambda: call_in_flight(hub, update_id), 60, interval=0.1, what=f"the invoice call for {order_id} in flight")
            cluster.kill()
            killed = time.monotonic()
            status = update_row(hub, order_id)[1]
            log(f"killed the cluster with the invoice of {order_id} in flight (update {update_id} {status}); "
                f"VTEX {'takes' if took_effect else 'never takes'} that call")
            assert status == "sending"
            # The held call ends (dropped, or taken by VTEX) while nobody is alive to hear it.
            wait_until(lambda: sandbox.stats()["invoices_ok"].get(order_id, 0) == (1 if took_effect else 0)
                       and time.monotonic() - killed > HOLD_MS / 1000, 30, what="the held call to end")
            cluster.start()
            wait_until(lambda: update_row(hub, order_id)[1] == "sent", 180, interval=1,
                       what=f"the invoice of {order_id} sent by the new worker")
            outcomes[order_id] = (took_effect, round(time.monotonic() - killed, 1))
            sandbox.clear_faults()

        stats = sandbox.stats()
        log(f"invoice calls {stats['calls'].get('invoice')}, taking effect {stats['invoices_ok']}; recovered in {outcomes}")
        # 1. The interrupted call never reached VTEX's state: the new worker's is the one invoice.
        assert stats["invoices_ok"][first] == 1
        # 2. VTEX took the dead worker's call; the new one overwrote it under the same number.
        assert stats["invoices_ok"][second] == 2
        assert stats["calls"]["invoice"] == 4  # two interrupted, two by the new workers, nothing else
        for order_id in (first, second):
            order = sandbox.get(f"/_sandbox/orders?app_key={APP_KEY}")
            [package] = next(o for o in order if o["orderId"] == order_id)["packageAttachment"]["packages"]
            assert package["invoiceNumber"] == f"NF-{order_id}"
            assert stats["statuses"][order_id] == "invoiced"
            update_id, status, sent_attempts = update_row(hub, order_id)
            assert status == "sent"
            log_of_attempts = attempts(hub, update_id)
            assert [outcome for _, outcome, _ in log_of_attempts] == ["transient", "succeeded"], log_of_attempts
            assert "worker stopped during this call" in log_of_attempts[0][2]
        assert hub.scalar("SELECT count(*) FROM integration_vtexupdate") == 2
        assert hub.scalar("SELECT count(*) FROM integration_vtexupdate WHERE status <> 'sent'") == 0
        assert hub.scalar("SELECT count(*) FROM integration_order WHERE vtex_status = 'invoiced'") == 2
