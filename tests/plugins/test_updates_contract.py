"""parse_update_message: the hub's inbound body format, with errors that name the field."""
import pytest

from integration.plugins import InboundUpdate, MalformedUpdate, PermanentError, parse_update_message


def test_each_kind_parses_into_an_inbound_update():
    invoice = parse_update_message(
        b'{"kind": "invoice", "orderId": "v1-01", "body": {"invoiceNumber": "NF-1", "invoiceValue": 1500}}',
        source="amqp message m1")
    assert invoice == InboundUpdate("invoice", "v1-01", {"invoiceNumber": "NF-1", "invoiceValue": 1500}, None, "amqp message m1")
    tracking = parse_update_message('{"kind": "tracking", "orderId": "v1-01", "invoiceNumber": "NF-1", '
                                    '"body": {"trackingNumber": "TR1", "courier": "Correios"}}', source="s")
    assert (tracking.kind, tracking.invoice_number, tracking.body["trackingNumber"]) == ("tracking", "NF-1", "TR1")
    delivery = parse_update_message('{"kind": "delivery", "orderId": "v1-01", "invoiceNumber": 77, "body": {"isDelivered": true}}', source="s")
    assert delivery.invoice_number == "77"
    cancel = parse_update_message('\ufeff{"kind": "cancel", "orderId": "v1-01"}'.encode(), source="s")
    assert (cancel.kind, cancel.body, cancel.invoice_number) == ("cancel", {}, None)
    refusal = parse_update_message('{"kind": "cancel-refusal", "orderId": "v1-01", "body": {"reason": "shipped"}}', source="s")
    assert (refusal.kind, refusal.body, refusal.invoice_number) == ("cancel-refusal", {"reason": "shipped"}, None)


@pytest.mark.parametrize(("data", "words"), [
    (b"\xff\xfe", "not UTF-8"),
    (b"{nope", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"orderId": "1", "body": {}}', "field 'kind' is missing"),
    (b'{"kind": "refund", "orderId": "1", "body": {}}', "field 'kind' is 'refund'"),
    (b'{"kind": "invoice", "body": {}}', "field 'orderId' is missing"),
    (b'{"kind": "invoice", "orderId": ["1"], "body": {}}', "field 'orderId' is a JSON list"),
    (b'{"kind": "invoice", "orderId": "../x", "body": {}}', "field 'orderId' is not a usable identifier"),
    (b'{"kind": "tracking", "orderId": "1", "body": {}}', "field 'invoiceNumber' is missing"),
    (b'{"kind": "invoice", "orderId": "1"}', "field 'body' is missing"),
    (b'{"kind": "invoice", "orderId": "1", "body": "NF-1"}', "field 'body' is a text"),
    (b'{"kind": "invoice", "orderId": "1\\u0000", "body": {}}', "not a usable identifier"),
    (b"[" * 100000 + b"]" * 100000, "JSON"),
    (b" " * (1024 * 1024 + 1), "more than"),
])
def test_malformed_messages_raise_a_permanent_error_naming_the_problem(data, words):
    with pytest.raises(MalformedUpdate) as info:
        parse_update_message(data, source="sftp file inbound/x.json")
    assert isinstance(info.value, PermanentError)
    assert str(info.value).startswith("sftp file inbound/x.json: ") and words in str(info.value)
