"""The store's expression check asks VTEX's own JSONata test endpoint beside the hub's engine, and
shows both: mocked with `responses`, and against the sandbox, which implements that endpoint."""
import json

import pytest
from django.urls import reverse

from integration.models import Account
from integration.operations import feed_configuration
from integration.pipeline.vtex_access import client_for
from integration.vtex import errors
from tests.fake_feed import BASE
from tests.shared_fixtures import make_hub_order
from tests.vtex_spec import assert_request_matches_spec

JSONATA = BASE + "/api/orders/expressions/jsonata"
ORDER = {"orderId": "1-01", "status": "ready-for-handling", "value": 15000}


def test_the_client_sends_what_the_spec_documents(account, vtex):
    vtex.post(JSONATA, json=True)
    assert client_for(account).test_expression("value > 100", ORDER) is True
    request = vtex.calls[0].request
    assert assert_request_matches_spec(request) == "/api/orders/expressions/jsonata"
    body = json.loads(request.body)
    assert body["Expression"] == "value > 100"
    assert json.loads(body["Document"]) == ORDER  # a JSON document as a string, as VTEX's schema says


def test_an_answer_that_is_not_true_or_false_is_a_bad_response(account, vtex):
    vtex.post(JSONATA, json={"result": True})
    with pytest.raises(errors.BadResponse):
        client_for(account).test_expression("value > 100", ORDER)


def test_both_answers_are_kept_and_a_disagreement_is_flagged(account, vtex):
    vtex.post(JSONATA, json=False)
    check = feed_configuration.check_expression(account, "value > 100", ORDER)
    assert (check.local_result, check.local_error, check.vtex_result, check.vtex_error) == (True, "", False, "")
    assert check.disagree


def test_vtex_refusing_the_check_is_said_plainly(account, vtex):
    vtex.post(JSONATA, status=403, json={"error": {"code": "1", "message": "Forbidden"}})
    check = feed_configuration.check_expression(account, "value > 100", ORDER)
    assert check.local_result is True and check.vtex_result is None
    assert check.vtex_error.startswith("VTEX refused the check (403)") and not check.disagree


def test_vtex_is_not_asked_without_a_readable_token(account, vtex):
    Account.objects.filter(pk=account.pk).update(app_token_ciphertext="not-a-fernet-token")
    account.refresh_from_db()
    check = feed_configuration.check_expression(account, "value > 100", ORDER)
    assert check.local_result is True and "cannot be decrypted" in check.vtex_skipped
    assert len(vtex.calls) == 0


def test_the_page_shows_both_results(admin_client, account, vtex):
    vtex.post(JSONATA, json=True)
    make_hub_order(account, "2-01")
    url = reverse("admin:integration_account_expression", args=[account.pk])
    response = admin_client.post(url, {"expression": "value > 100", "document": json.dumps(ORDER)})
    html = response.content.decode()
    assert 'id="expression-result"' in html and "this order would be put in the feed" in html
    assert 'id="vtex-expression-result"' in html and "VTEX would put this order in the feed" in html
    assert "test-app-token-SECRET-123" not in html
    vtex.replace("POST", JSONATA, json=False)
    html = admin_client.post(url, {"expression": "value > 100", "document": json.dumps(ORDER)}).content.decode()
    assert "VTEX would <strong>not</strong> put this order in the feed" in html and 'id="expression-disagree"' in html


@pytest.mark.django_db
def test_against_the_sandbox_vtex_and_the_hub_agree(sandbox, sandbox_store):
    from tests.shared_fixtures import APP_KEY

    ids = sandbox.create_orders(APP_KEY, 3, kind="pickup") + sandbox.create_orders(APP_KEY, 3, kind="seller")
    for order_id in ids:
        order = sandbox.order(APP_KEY, order_id)
        for expression in ("value > 50000", '$count(items[seller != "1"]) > 0',
                           'shippingData.logisticsInfo[0].deliveryChannel = "pickup-in-point"'):
            check = feed_configuration.check_expression(sandbox_store, expression, order)
            assert check.vtex_error == "" and check.local_error == ""
            assert check.vtex_result is (check.local_result is True), (order_id, expression)
            assert not check.disagree
    assert sandbox.stats()["calls"]["test_expression"] == 18
