"""`make run`'s demo ERP against the real hub: it reads what the file_drop adapter wrote and answers
through the ERP API (served by live_server), and VTEX gets the invoice, then the tracking number."""
import pytest

from integration.demo import DEMO_ERP_TOKEN_NAME, demo_erp_access, ensure_demo_store
from integration.models import Account, AdapterBinding, ErpToken, Order, StartHandlingState, UpdateSource, VtexUpdate
from integration.models.updates import hash_token
from integration.pipeline.outbox import send_due
from integration.plugins import parse_order
from tests.fake_oms import make_order
from vtex_sandbox.erp.invoicer import Invoicer


@pytest.mark.django_db
def test_each_start_issues_a_fresh_demo_token_and_revokes_the_last(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    assert demo_erp_access() is None  # no demo store yet: no demo ERP
    ensure_demo_store("http://127.0.0.1:8765")
    directory, first = demo_erp_access()
    assert directory == str(tmp_path / "drop")
    directory, second = demo_erp_access()
    tokens = ErpToken.objects.filter(name=DEMO_ERP_TOKEN_NAME)
    assert [t.token_hash for t in tokens if t.active] == [hash_token(second)]
    assert not tokens.get(token_hash=hash_token(first)).active
    # A retired demo store (inactive) gets no demo ERP.
    Account.objects.filter(account_name="demostore").update(active=False)
    assert demo_erp_access() is None


@pytest.mark.django_db(transaction=True)
def test_the_demo_erp_invoices_a_delivered_order_through_the_erp_api(live_server, account, oms, tmp_path):
    binding = AdapterBinding(account=account, adapter_key="file_drop", name="Files")
    binding.apply_settings({"directory": str(tmp_path)})
    binding.save()
    token = ErpToken.issue(binding, name=DEMO_ERP_TOKEN_NAME)[1]
    raw = make_order("2001-01", "handling")
    oms.add("2001-01", "handling")
    Order.objects.create(account=account, order_id="2001-01", vtex_status="handling", start_handling_state=StartHandlingState.DONE)
    binding.build_adapter().send_order(parse_order(raw), raw, "teststore:send:2001-01")

    invoicer = Invoicer(tmp_path, f"{live_server.url}/erp-api/teststore", token, delay=0)
    assert invoicer.scan() == 1 and invoicer.invoiced == ["2001-01"]
    updates = list(VtexUpdate.objects.order_by("pk"))
    assert [(u.kind, u.source, u.invoice_number) for u in updates] == [
        ("invoice", UpdateSource.API, "NF-2001-01"), ("tracking", UpdateSource.API, "NF-2001-01")]
    send_due(budget=10)
    assert [c[0] for c in oms.calls] == ["invoice", "tracking"]
    invoice = oms.calls[0][3]
    assert invoice["invoiceValue"] == str(raw["value"])  # VTEX's spec: a string of cents
    assert invoice["items"] == [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in raw["items"]]
    assert oms.calls[1][3]["trackingNumber"] and Order.objects.get(order_id="2001-01").vtex_status == "invoiced"
    # After a restart the demo ERP answers the same file again: the hub knows both, VTEX hears nothing new.
    assert Invoicer(tmp_path, f"{live_server.url}/erp-api/teststore", token, delay=0).scan() == 1
    assert VtexUpdate.objects.count() == 2
    send_due(budget=10)
    assert len(oms.calls) == 2
