"""file_drop's inbox: update files the ERP drops go to VTEX through the hub's outbox, and each file
moves to processed/ or rejected/ (with the reason beside it). Driven by the real scheduled poll."""
import json
import os

import pytest

from integration.models import AdapterBinding, UpdateSource, UpdateStatus, VtexUpdate
from integration.pipeline.adapter_updates import poll_all
from integration.pipeline.outbox import send_due
from tests.fake_vtex_updates import TRACKING, invoice_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def drop(tmp_path, account):
    directory = tmp_path / "orders"
    binding = AdapterBinding(account=account, adapter_key="file_drop", name="Files")
    binding.apply_settings({"directory": str(directory), "inbox_enabled": True, "inbox_settle_seconds": 0})
    binding.save()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox


def put(inbox, name, content):
    (inbox / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


def test_update_files_are_received_sent_and_moved(drop, handled_order, oms):
    put(drop, "invoice--1001-01.json", invoice_body())
    put(drop, "tracking--1001-01--NF-1.json", TRACKING)
    report = poll_all()
    assert report.bindings == 1 and report.updates == 2 and not report.errors
    assert sorted(os.listdir(drop / "processed")) == ["invoice--1001-01.json", "tracking--1001-01--NF-1.json"]
    assert [n for n in os.listdir(drop) if n.endswith(".json")] == []
    updates = VtexUpdate.objects.order_by("pk")
    assert [(u.kind, u.source, u.invoice_number) for u in updates] == [("invoice", UpdateSource.ADAPTER, "NF-1"), ("tracking", UpdateSource.ADAPTER, "NF-1")]
    assert "invoice--1001-01.json" in updates[0].source_detail
    send_due(budget=10)
    assert [c[0] for c in oms.calls] == ["invoice", "tracking"]
    assert set(VtexUpdate.objects.values_list("status", flat=True)) == {UpdateStatus.SENT}
    # The same file again is a duplicate: accepted (processed), nothing sent twice.
    put(drop, "invoice--1001-01.json", invoice_body())
    poll_all()
    assert len(os.listdir(drop / "processed")) == 3 and VtexUpdate.objects.count() == 2


@pytest.mark.parametrize("name, content, reason", [
    ("invoice--1001-01.json", "{not json", "not JSON"),
    ("invoice--1001-01.json", {**invoice_body(), "invoiceValue": 0}, "invoiceValue"),
    ("refund--1001-01.json", invoice_body(), "must start with one of"),
    ("tracking--1001-01.json", TRACKING, "no invoice number"),
    ("invoice--9999-01.json", invoice_body(), "VTEX does not know the order"),
])
def test_a_bad_file_is_rejected_with_the_reason_beside_it(drop, handled_order, oms, name, content, reason):
    put(drop, name, content)
    poll_all()
    rejected = drop / "rejected"
    assert (rejected / name).exists()
    assert reason in (rejected / f"{name}.reason.txt").read_text()
    assert not VtexUpdate.objects.exists()


def test_temporary_and_fresh_files_are_left_alone(drop, handled_order, oms):
    binding = AdapterBinding.objects.get(adapter_key="file_drop")
    binding.apply_settings({**binding.settings, "inbox_settle_seconds": 3600})
    binding.save()
    put(drop, ".invoice--1001-01.json.tmp", invoice_body())
    put(drop, "invoice--1001-01.json", invoice_body())
    assert poll_all().updates == 0
    assert sorted(os.listdir(drop)) == [".invoice--1001-01.json.tmp", "invoice--1001-01.json"]


def test_vtex_unreachable_leaves_the_file_for_the_next_poll(drop, vtex, account):
    import re

    vtex.add("GET", re.compile(r".*/api/oms/pvt/orders/5001-01$"), status=503)
    put(drop, "invoice--5001-01.json", invoice_body())
    poll_all()
    assert os.listdir(drop) == ["invoice--5001-01.json"] and not VtexUpdate.objects.exists()


def test_a_cancellation_refusal_is_recorded_on_the_order_and_nothing_goes_to_vtex(drop, handled_order, oms, admin_client):
    """VTEX's Orders API has no call to decline a cancellation request: the ERP's refusal is kept for the operator."""
    put(drop, "cancel-refusal--1001-01.json", {"reason": "Made to measure: already in production"})
    report = poll_all()
    assert report.updates == 1 and not report.errors
    assert os.listdir(drop / "processed") == ["cancel-refusal--1001-01.json"]
    handled_order.refresh_from_db()
    assert "Made to measure: already in production" in handled_order.cancellation_refusal
    assert "binding Files" in handled_order.cancellation_refusal
    assert oms.calls == [] and VtexUpdate.objects.count() == 0
    page = admin_client.get(f"/admin/integration/order/{handled_order.pk}/change/").content.decode()
    assert 'id="cancellation-refusal"' in page and "already in production" in page
    # A refusal for a canceled order comes too late: rejected, with the reason beside the file.
    type(handled_order).objects.filter(pk=handled_order.pk).update(canceled=True)
    put(drop, "cancel-refusal--1001-01.json", {"reason": "late"})
    poll_all()
    assert "canceled already" in (drop / "rejected" / "cancel-refusal--1001-01.json.reason.txt").read_text()
