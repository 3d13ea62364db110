"""The order page: everything the hub knows of one order, read-only and escaped."""
import html as html_module
import json

import pytest
from django.urls import reverse

from integration.models import AttemptOutcome, FeedEvent, OrderSync, StartHandlingState, SyncAttempt, SyncStatus
from tests.shared_fixtures import make_binding, make_hub_order, make_sync

pytestmark = pytest.mark.django_db


def page(client, order):
    response = client.get(reverse("admin:integration_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response, response.content.decode()


def test_order_page_shows_the_parsed_order_status_events_syncs_and_start_handling(admin_client, account, binding):
    order = make_hub_order(account, "1001-01", start_handling_state=StartHandlingState.CONFLICT,
                           start_handling_record="VTEX answered 409 OMS003; VTEX status now 'handling'.")
    FeedEvent.objects.create(account=account, change_key="k1", event_id="EV-1", order_id="1001-01", state="ready-for-handling",
                             last_state="window-to-cancel", current_change="2026-11-27T10:00:00.0000000Z", handle="h1")
    FeedEvent.objects.create(account=account, change_key="k2", order_id="OTHER-01", state="ready-for-handling")
    make_sync(order, binding, SyncStatus.FAILED, attempts=2)
    response, html = page(admin_client, order)
    assert "Order 1001-01" in html
    assert "Ana Silva" in html and "ana@example.com" in html                     # customer
    assert "SKU0" in html and "Item 1" in html                                    # items
    assert "BRL 64.50" in html and "BRL 49.50" in html                            # total, items total, with currency
    assert "BRL 15.00" in html                                                     # shipping
    assert 'id="vtex-status">ready-for-handling' in html
    assert "EV-1" in html and "OTHER-01" not in html                              # this order's events only
    assert "window-to-cancel" in html
    assert "Failed" in html and "ERP answered 500" in html
    assert html.count('class="attempt attempt-transient"') == 2
    assert "41 ms" in html and "42 ms" in html
    assert "VTEX answered 409 OMS003" in html and "Conflict" in html
    assert 'href="https://teststore.myvtex.com/admin/orders/1001-01"' in html
    assert 'rel="noopener noreferrer"' in html


def test_excerpts_errors_and_raw_json_are_escaped(admin_client, account, binding):
    order = make_hub_order(account, "1002-01")
    order.snapshot["clientProfileData"]["firstName"] = "<b>Ana</b>"
    order.save()
    sync = make_sync(order, binding, SyncStatus.FAILED, attempts=0, error="<script>alert('error')</script>")
    SyncAttempt.objects.create(sync=sync, number=1, outcome=AttemptOutcome.PERMANENT, error="<img src=x onerror=alert(1)>",
                               request_excerpt='{"note": "<script>alert(\'sent\')</script>"}',
                               response_excerpt="<html><body>Bad gateway</body></html>",
                               traceback="Traceback <module>\nValueError: <oops>")
    _, html = page(admin_client, order)
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>Ana</b>" not in html
    assert "&lt;script&gt;alert(&#x27;error&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;html&gt;&lt;body&gt;Bad gateway&lt;/body&gt;&lt;/html&gt;" in html
    assert "ValueError: &lt;oops&gt;" in html
    assert "&lt;b&gt;Ana&lt;/b&gt;" in html


def test_raw_json_is_pretty_printed_in_a_collapsible_details(admin_client, account, binding):
    order = make_hub_order(account, "1003-01")
    _, html = page(admin_client, order)
    start = html.index('<details id="raw-json">')
    block = html[start:html.index("</details>", start)]
    assert "<summary>" in block
    assert '\n  &quot;orderId&quot;: &quot;1003-01&quot;,\n' in block
    shown = html_module.unescape(block[block.index("<pre>") + 5:block.index("</pre>")])
    # The same JSON, indented by two (PostgreSQL's jsonb keeps its own key order).
    assert json.loads(shown) == order.snapshot
    assert shown == json.dumps(json.loads(shown), indent=2, ensure_ascii=False)


def test_order_page_is_read_only(admin_client, account, binding):
    order = make_hub_order(account, "1004-01")
    _, html = page(admin_client, order)
    assert "<input" not in html.replace('type="hidden"', "").split('id="content-main"')[1].split("<form")[0]
    assert 'name="_save"' not in html and 'name="vtex_status"' not in html
    response = admin_client.post(reverse("admin:integration_order_change", args=[order.pk]), {"vtex_status": "x"})
    assert response.status_code == 405
    order.refresh_from_db()
    assert order.vtex_status == "ready-for-handling"


def test_an_order_never_fetched_and_an_unparseable_one(admin_client, account, binding):
    unfetched = make_hub_order(account, "1005-01", snapshot=False, status="")
    _, html = page(admin_client, unfetched)
    assert "has not fetched this order" in html and "not fetched yet" in html
    broken = make_hub_order(account, "1006-01")
    broken.snapshot = {"orderId": "1006-01", "items": []}
    broken.save()
    _, html = page(admin_client, broken)
    assert "cannot be used" in html and "has no items" in html


def test_the_order_page_queries_do_not_grow_with_syncs_and_attempts(admin_client, account, django_assert_max_num_queries):
    order = make_hub_order(account, "1007-01")
    for n in range(6):
        make_sync(order, make_binding(account, name=f"ERP {n}"), SyncStatus.FAILED, attempts=3)
    for n in range(10):
        FeedEvent.objects.create(account=account, change_key=f"e{n}", order_id="1007-01", state="ready-for-handling")
    with django_assert_max_num_queries(12):
        page(admin_client, order)


def test_a_sync_link_opens_its_order_page(admin_client, account, binding):
    order = make_hub_order(account, "1008-01")
    sync = make_sync(order, binding)
    for model in ("ordersync", "failedsync"):
        response = admin_client.get(reverse(f"admin:integration_{model}_change", args=[sync.pk]))
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:integration_order_change", args=[order.pk]) + f"#sync-{sync.pk}"
    assert admin_client.get(reverse("admin:integration_ordersync_change", args=[999999])).status_code == 404
    assert OrderSync.objects.count() == 1
