"""The demo ERP's way back (``python -m vtex_sandbox.erp.invoicer``): order files in, VTEX's invoice and
tracking calls out, a few seconds later. The loopback ERP stands in for the hub's ERP API here (it
records every call); tests/e2e/test_runhub.py runs it against the real hub."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from vtex_sandbox import LoopbackERP
from vtex_sandbox.erp.invoicer import Invoicer, NotAnOrderFile, bodies_for

from .conftest import APP_KEY
from .processes import ROOT


def drop_file(directory, order, action="send", name=None):
    """A file as the hub's file_drop adapter writes it."""
    document = {"event": f"order.{action}", "idempotency_key": f"k:{action}:{order['orderId']}", "account": "teststore",
                "written_at": "2026-12-02T10:00:00+00:00", "order": {"order_id": order["orderId"]}, "vtex_order": order}
    path = directory / (name or f"teststore-{order['orderId']}-{action}.json")
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_bodies_invoice_the_whole_order_and_vtex_takes_them(sb, vtex, tmp_path):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 204
    document = json.loads(drop_file(tmp_path, sb.order(APP_KEY, order_id)).read_text())
    got_id, invoice, tracking = bodies_for(document)
    assert got_id == order_id and invoice["invoiceNumber"] == f"NF-{order_id}"
    assert invoice["invoiceValue"] == sb.order(APP_KEY, order_id)["value"]
    # The sandbox validates as VTEX does and moves the order to invoiced once the invoice covers it.
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=invoice).status_code == 200
    assert vtex.request("PATCH", f"/api/oms/pvt/orders/{order_id}/invoice/{invoice['invoiceNumber']}", json=tracking).status_code == 200
    order = vtex.get(f"/api/oms/pvt/orders/{order_id}").json()
    assert order["status"] == "invoiced"
    assert order["packageAttachment"]["packages"][0]["trackingNumber"] == tracking["trackingNumber"]
    # The same file always gives the same bodies: answering it again after a restart is a repeat.
    assert bodies_for(document) == (got_id, invoice, tracking)


@pytest.mark.parametrize("document", [
    {"event": "order.cancel", "vtex_order": {"orderId": "1-01"}},
    {"event": "order.send", "vtex_order": {"orderId": "1-01", "items": [], "value": 100, "creationDate": "2026-12-02"}},
    {"event": "order.send", "vtex_order": {"orderId": "1-01", "items": [{"id": "1"}], "value": 100, "creationDate": "2026-12-02"}},
    ["not", "a", "document"],
])
def test_anything_but_a_delivered_order_is_not_answered(document):
    with pytest.raises(NotAnOrderFile):
        bodies_for(document)


def test_each_order_file_is_invoiced_then_tracked_after_the_delay(sb, erp, tmp_path):
    order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1)[0])
    drop_file(tmp_path, order)
    drop_file(tmp_path, order, action="cancel")  # not an order to invoice
    (tmp_path / ".half-written.json.tmp").write_text("{")
    invoicer = Invoicer(tmp_path, erp.url + "/erp-api/teststore/", "vhub_test-token", delay=5)
    start = time.monotonic()
    assert invoicer.scan(now=start) == 0 and erp.received == []  # too early: the ERP takes a moment
    assert invoicer.scan(now=start + 5) == 2
    base = f"/erp-api/teststore/api/oms/pvt/orders/{order['orderId']}"
    assert [(r["method"], r["path"]) for r in erp.received] == [("POST", f"{base}/invoice"),
                                                                ("PATCH", f"{base}/invoice/NF-{order['orderId']}")]
    assert {r["headers"]["Authorization"] for r in erp.received} == {"Bearer vhub_test-token"}
    assert erp.received[0]["body"]["invoiceValue"] == order["value"]
    # Answered once: later scans leave it alone; a new order file is answered in its turn.
    assert invoicer.scan(now=start + 60) == 0 and len(erp.received) == 2
    assert invoicer.invoiced == [order["orderId"]]


class TrackingFailsERP(LoopbackERP):
    """The loopback ERP, answering the next `tracking_failures` PATCH calls with 503."""

    tracking_failures = 0

    def _accept(self, method, path, headers, body):
        if method == "PATCH" and self.tracking_failures:
            self.tracking_failures -= 1
            return 503, {"error": "injected failure 503"}, None
        return super()._accept(method, path, headers, body)


@pytest.fixture
def hub_api():
    server = TrackingFailsERP(port=0).start()
    yield server
    server.stop()


def test_the_hub_not_answering_is_retried_and_a_refusal_is_not(sb, hub_api, tmp_path, capsys):
    first, second, third = (sb.order(APP_KEY, oid) for oid in sb.create_orders(APP_KEY, 3))
    drop_file(tmp_path, first)
    invoicer = Invoicer(tmp_path, hub_api.url, "vhub_test-token", delay=0)
    hub_api.fail_with(503, count=1)
    now = time.monotonic()
    assert invoicer.scan(now=now) == 1 and hub_api.received == []
    assert "503" in capsys.readouterr().out
    assert invoicer.scan(now=now + 1) == 0  # it waits before trying again
    assert invoicer.scan(now=now + 2) == 1
    assert [r["method"] for r in hub_api.received] == ["POST", "PATCH"]
    # The tracking call fails once: only the tracking is tried again, never the invoice.
    drop_file(tmp_path, second)
    hub_api.tracking_failures = 1
    assert invoicer.scan(now=now + 3) == 1
    assert invoicer.scan(now=now + 10) == 1
    assert [r["method"] for r in hub_api.received] == ["POST", "PATCH", "POST", "PATCH"]
    assert hub_api.received[3]["path"].endswith(f"/invoice/NF-{second['orderId']}")
    # A body the hub refuses (4xx): reported, never tried again.
    drop_file(tmp_path, third)
    hub_api.fail_with(400, count=1)
    assert invoicer.scan(now=now + 20) == 1
    assert "refused the invoice: 400" in capsys.readouterr().out
    calls = len(hub_api.attempts)
    assert invoicer.scan(now=now + 200) == 0 and len(hub_api.attempts) == calls


def test_while_the_hub_is_down_it_says_so_once_and_tries_one_file_a_scan(sb, tmp_path, capsys):
    for order_id in sb.create_orders(APP_KEY, 3):
        drop_file(tmp_path, sb.order(APP_KEY, order_id))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
    invoicer = Invoicer(tmp_path, nobody, "vhub_test-token", delay=0)
    now = time.monotonic()
    assert invoicer.scan(now=now) == 1
    assert invoicer.scan(now=now + 1) == 1
    assert invoicer.scan(now=now + 2) == 1
    assert invoicer.scan(now=now + 100) == 1
    out = capsys.readouterr().out
    assert out.count("the hub does not answer") == 1, out
    assert len(invoicer.pending) == 3 and invoicer.invoiced == []


def test_the_command_needs_a_token_and_stops_on_sigterm(sb, erp, tmp_path):
    command = [sys.executable, "-m", "vtex_sandbox.erp.invoicer", "--drop", str(tmp_path), "--hub", erp.url,
               "--delay", "0", "--interval", "0.2"]
    env = {k: v for k, v in os.environ.items() if k != "HUB_ERP_TOKEN"}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "HUB_ERP_TOKEN" in refused.stderr
    proc = subprocess.Popen(command, cwd=ROOT, env=dict(env, HUB_ERP_TOKEN="vhub_from-env"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "invoicing the orders in" in proc.stdout.readline()
        order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1)[0])
        drop_file(tmp_path, order)
        received = erp.wait_for(2, timeout=20)
        assert [r["method"] for r in received] == ["POST", "PATCH"]
        assert received[0]["headers"]["Authorization"] == "Bearer vhub_from-env"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = proc.stdout.read()
    assert "demo ERP: stopping." in output and "vhub_from-env" not in output
