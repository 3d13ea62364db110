"""The amqp adapter against a real RabbitMQ: delivery with confirms, routing failures, restarts,
connection reuse, the connection check and the inbound queue."""
import json
import logging
import socket
import subprocess
import time

import pika
import pytest

import erp_plugins.amqp
from erp_plugins.amqp.adapter import POOL, REASON_HEADER, AmqpAdapter
from integration.plugins import UPDATES, PermanentError, SettingsError, TransientError, parse_order
from tests.recording import UpdateReceiver as Recorder

pytestmark = pytest.mark.slow  # a real RabbitMQ, restarted by some tests

RAW = {
    "orderId": "1500000000009-01",
    "sequence": "500009",
    "status": "ready-for-handling",
    "hostname": "luxstore",
    "value": 1500,
    "items": [{"id": "7", "name": "Dog food", "quantity": 3, "price": 500, "sellingPrice": 500}],
    "totals": [{"id": "Items", "value": 1500}],
}
ORDER = parse_order(RAW)


def adapter_for(broker, **settings):
    values = {"url": broker.adapter_url, "password": broker.password, "exchange": broker.exchange,
              "routing_key": "erp.{action}", "_account": "luxstore", **settings}
    config = AmqpAdapter.validate_settings(values)
    config["_account"] = values["_account"]
    return AmqpAdapter(config)


def bound(broker, routing_keys=("erp.send", "erp.cancel", "erp.status")):
    broker.declare_exchange(broker.exchange)
    broker.declare_queue(broker.queue)
    for key in routing_keys:
        broker.channel.queue_bind(broker.queue, broker.exchange, key)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- registration and settings --------------------------------------------------------------------
def test_the_builtin_plugin_provides_the_adapter_with_the_updates_capability():
    assert erp_plugins.amqp.erp_adapters() == [AmqpAdapter]
    assert AmqpAdapter.supports(UPDATES) and AmqpAdapter.supports("send") and AmqpAdapter.supports("cancel")
    assert AmqpAdapter.secret_setting_names() == {"password"}


def test_settings_validation_names_each_bad_field():
    cleaned = AmqpAdapter.validate_settings({"url": "amqps://hub@mq.example.com/prod", "password": "s3cret-pw"})
    assert cleaned["routing_key"] == "vtex.order.{action}" and cleaned["heartbeat"] == 30
    adapter = AmqpAdapter(cleaned)
    assert (adapter.scheme, adapter.host, adapter.port, adapter.vhost) == ("amqps", "mq.example.com", 5671, "prod")
    assert AmqpAdapter(AmqpAdapter.validate_settings({"url": "amqp://hub@mq/%2F"})).vhost == "/"
    with pytest.raises(SettingsError) as info:
        AmqpAdapter.validate_settings({
            "url": "amqp://hub:inline-pw@mq/", "routing_key": "{order_id}", "heartbeat": 1,
            "dead_letter_exchange": "dlx",
        })
    assert set(info.value.errors) == {"url", "routing_key", "heartbeat", "dead_letter_exchange"}
    assert "Password field" in info.value.errors["url"]
    for url in ("http://mq/", "amqp://mq/", "amqp://u@/", "amqp://u@mq/a/b", "amqp://u@mq:x/", "amqp://u@mq/?heartbeat=5"):
        with pytest.raises(SettingsError) as info:
            AmqpAdapter.validate_settings({"url": url})
        assert "url" in info.value.errors, url


# --- out ------------------------------------------------------------------------------------------
def test_each_action_is_one_persistent_confirmed_message_keyed_by_the_idempotency_key(broker):
    bound(broker)
    adapter = adapter_for(broker)
    try:
        delivery = adapter.send_order(ORDER, RAW, "key-send-1")
        adapter.cancel_order(ORDER, RAW, "key-cancel-1")
        adapter.status_changed(ORDER, RAW, "invoiced", "key-status-1")
    finally:
        adapter.close()
    assert "confirmed" in delivery.detail and delivery.reference == "key-send-1"
    assert "message_id: key-send-1" in delivery.request_excerpt
    messages = broker.drain(broker.queue)
    assert [p.message_id for p, _ in messages] == ["key-send-1", "key-cancel-1", "key-status-1"]
    properties, body = messages[0]
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.headers == {"x-hub-event": "order.send", "x-hub-account": "luxstore"}
    document = json.loads(body)
    assert document["event"] == "order.send" and document["idempotency_key"] == "key-send-1"
    assert document["order"]["order_id"] == "1500000000009-01" and document["order"]["value"] == "15.00"
    assert document["vtex_order"] == RAW and document["account"] == "luxstore"
    assert [p.headers["x-hub-event"] for p, _ in messages[1:]] == ["order.cancel", "order.status"]
    assert json.loads(messages[2][1])["state"] == "invoiced"


def test_the_routing_key_template_takes_the_store_and_the_action(broker):
    broker.declare_exchange(broker.exchange, "topic")
    broker.declare_queue(broker.queue, bind_to=broker.exchange, routing_key="luxstore.send")
    adapter = adapter_for(broker, routing_key="{account}.{action}")
    adapter.send_order(ORDER, RAW, "key-1")
    adapter.close()
    assert [p.message_id for p, _ in broker.drain(broker.queue)] == ["key-1"]


def test_an_unroutable_message_is_a_transient_failure_and_publishes_once_a_queue_is_bound(broker):
    broker.declare_exchange(broker.exchange)
    broker.declare_queue(broker.queue)  # not bound yet: the message cannot be routed
    adapter = adapter_for(broker)
    with pytest.raises(TransientError) as info:
        adapter.send_order(ORDER, RAW, "key-unroutable")
    assert "could not route" in str(info.value) and "erp.send" in str(info.value)
    assert "key-unroutable" in info.value.request_excerpt
    assert broker.count(broker.queue) == 0
    broker.channel.queue_bind(broker.queue, broker.exchange, "erp.send")
    adapter.send_order(ORDER, RAW, "key-unroutable")  # the retry, on the same connection
    adapter.close()
    assert [p.message_id for p, _ in broker.drain(broker.queue)] == ["key-unroutable"]


def test_a_missing_exchange_is_a_permanent_error_that_says_so(broker):
    adapter = adapter_for(broker)  # the exchange was never declared
    with pytest.raises(PermanentError) as info:
        adapter.send_order(ORDER, RAW, "key-x")
    assert "no exchange" in str(info.value) and broker.exchange in str(info.value)
    with pytest.raises(PermanentError) as info:
        adapter.check_connection()
    assert f"the exchange {broker.exchange!r} does not exist" in str(info.value)
    adapter.close()


def test_a_dispatch_batch_reuses_one_connection_across_adapters(broker):
    bound(broker)
    connections = set()
    for n in range(5):  # as the dispatcher does: build, deliver, close, per order
        adapter = adapter_for(broker)
        adapter.send_order(ORDER, RAW, f"key-{n}")
        connections.add(id(adapter._connection))
        adapter.close()
    assert len(connections) == 1 and POOL.idle_count() == 1
    assert len(broker.drain(broker.queue)) == 5
    other = adapter_for(broker, heartbeat=60)  # other connection settings: another connection
    other.send_order(ORDER, RAW, "key-other")
    assert id(other._connection) not in connections
    other.close()
    assert POOL.idle_count() == 2


def test_a_pooled_connection_idle_too_long_is_replaced(broker):
    bound(broker)
    first = adapter_for(broker, heartbeat=5)
    first.send_order(ORDER, RAW, "key-a")
    old = first._connection
    first.close()
    time.sleep(2.6)  # more than half the heartbeat: the broker may have dropped it
    second = adapter_for(broker, heartbeat=5)
    second.send_order(ORDER, RAW, "key-b")
    assert second._connection is not old and not old.is_open
    second.close()


def _broker_running():
    try:
        pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", connection_attempts=1, socket_timeout=2)).close()
        return True
    except Exception:
        return False


def test_a_broker_restart_mid_batch_loses_nothing_and_keeps_one_key_per_order(broker):
    bound(broker)
    keys = [f"key-order-{n}" for n in range(12)]
    pending, outcomes = list(keys), {}
    stopped = False
    try:
        for n, key in enumerate(keys):
            if n == 6:
                subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
                stopped = True
            adapter = adapter_for(broker)
            try:
                adapter.send_order(ORDER, RAW, key)
                outcomes[key] = "delivered"
                pending.remove(key)
            except TransientError as exc:
                outcomes[key] = str(exc)
            finally:
                adapter.close()
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        stopped = False
    finally:
        if stopped:
            subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
    assert pending == keys[6:], outcomes  # the first six were confirmed, the rest failed transiently
    assert all("refused the connection" in outcomes[k] or "lost" in outcomes[k] for k in pending), [outcomes[k] for k in pending]
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:  # the dispatcher's retries: same keys
        key = pending[0]
        adapter = adapter_for(broker)
        try:
            adapter.send_order(ORDER, RAW, key)
            pending.pop(0)
        except TransientError:
            time.sleep(0.5)
        finally:
            adapter.close()
    assert not pending
    broker.connect()  # the test's own connection died with the broker
    messages = broker.drain(broker.queue)
    ids = [p.message_id for p, _ in messages]
    assert set(ids) == set(keys)  # nothing lost across the restart (durable queue, persistent messages)
    assert all(json.loads(body)["idempotency_key"] == p.message_id for p, body in messages)


# --- the connection check -------------------------------------------------------------------------
def test_check_connection_reports_what_it_found(broker):
    bound(broker)
    broker.declare_queue(broker.inbound)
    broker.publish(broker.inbound, b"{}")
    message = adapter_for(broker, inbound_queue=broker.inbound).check_connection()
    assert f"Exchange {broker.exchange!r} exists" in message
    assert f"Inbound queue {broker.inbound!r} exists (1 message(s) waiting)" in message


def test_check_connection_says_what_is_wrong_in_plain_words(broker):
    cases = [
        ({"url": f"amqp://guest@127.0.0.1:{free_port()}/"}, TransientError, "refused the connection"),
        ({"url": "amqp://guest@no-such-host.invalid/"}, TransientError, "does not resolve"),
        ({"password": "wrong-password-123"}, PermanentError, "refused the login of user 'guest'"),
        ({"url": broker.adapter_url.rsplit("/", 1)[0] + "/no-such-vhost"}, PermanentError, "may not use virtual host"),
        ({"exchange": "", "inbound_queue": "no.such.queue"}, PermanentError, "the queue 'no.such.queue' does not exist"),
    ]
    for settings, kind, words in cases:
        with pytest.raises(kind) as info:
            adapter_for(broker, **settings).check_connection()
        assert words in str(info.value), (settings, str(info.value))
        assert "wrong-password-123" not in str(info.value)


def test_a_delivery_to_a_stopped_broker_is_transient(broker):
    adapter = adapter_for(broker, url=f"amqp://guest@127.0.0.1:{free_port()}/")
    with pytest.raises(TransientError) as info:
        adapter.send_order(ORDER, RAW, "key-1")
    assert "refused the connection" in str(info.value) and "key-1" in info.value.request_excerpt


# --- the way back ---------------------------------------------------------------------------------
def inbound_message(order_id, kind="invoice", **extra):
    body = {"invoiceNumber": f"NF-{order_id}", "invoiceValue": 1500, "issuanceDate": "2026-12-01", "items": []}
    return json.dumps({"kind": kind, "orderId": order_id, "body": body, **extra}).encode()


def test_inbound_updates_are_acknowledged_only_once_stored_and_bad_ones_dead_lettered_with_the_reason(broker):
    broker.declare_exchange(broker.dlx)
    broker.declare_queue(broker.dead, bind_to=broker.dlx, routing_key=broker.inbound)
    broker.declare_queue(broker.inbound)
    broker.publish(broker.inbound, inbound_message("1001-01"), message_id="m1")
    broker.publish(broker.inbound, b"{not json", message_id="m2")
    broker.publish(broker.inbound, json.dumps({"kind": "invoice", "body": {}}).encode(), message_id="m3")
    broker.publish(broker.inbound, inbound_message("1004-01"), message_id="m4")  # the hub refuses this one
    broker.publish(broker.inbound, inbound_message("1005-01", kind="tracking", invoiceNumber="NF-1"), message_id="m5")
    receive = Recorder(refuse={"1004-01"})
    adapter = adapter_for(broker, exchange="", inbound_queue=broker.inbound, dead_letter_exchange=broker.dlx)
    assert adapter.poll_updates(receive) == 5
    assert adapter.poll_updates(receive) == 0  # nothing comes back: no loop
    adapter.close()
    assert [(u.kind, u.order_id, u.invoice_number) for u in receive.updates] == [
        ("invoice", "1001-01", None), ("invoice", "1004-01", None), ("tracking", "1005-01", "NF-1")]
    assert receive.updates[0].source == "amqp message m1"
    assert receive.updates[0].body["invoiceNumber"] == "NF-1001-01"
    assert broker.count(broker.inbound) == 0
    dead = broker.drain(broker.dead)
    reasons = {p.message_id: p.headers[REASON_HEADER] for p, _ in dead}
    assert set(reasons) == {"m2", "m3", "m4"}
    assert "not JSON" in reasons["m2"]
    assert "field 'orderId' is missing" in reasons["m3"]
    assert "body.invoiceValue" in reasons["m4"]
    assert {p.headers["x-hub-rejected-from"] for p, _ in dead} == {broker.inbound}
    assert dict((p.message_id, b) for p, b in dead)["m2"] == b"{not json"  # the original body, untouched


def test_without_a_dead_letter_setting_the_queue_own_dlx_gets_the_message_and_the_log_the_reason(broker, caplog):
    broker.declare_exchange(broker.dlx, "fanout")
    broker.declare_queue(broker.dead, bind_to=broker.dlx)
    broker.declare_queue(broker.inbound, arguments={"x-dead-letter-exchange": broker.dlx})
    broker.publish(broker.inbound, json.dumps({"kind": "refund", "orderId": "1-01", "body": {}}).encode(), message_id="bad-1")
    adapter = adapter_for(broker, exchange="", inbound_queue=broker.inbound)
    with caplog.at_level(logging.ERROR, logger="erp_plugins.amqp.adapter"):
        assert adapter.poll_updates(Recorder()) == 1
    adapter.close()
    assert "amqp message bad-1: field 'kind' is 'refund'" in caplog.text
    dead = broker.drain(broker.dead)
    assert [p.message_id for p, _ in dead] == ["bad-1"]
    assert dead[0][0].headers["x-death"][0]["reason"] == "rejected"
    assert broker.count(broker.inbound) == 0


def test_an_update_the_hub_could_not_store_stays_in_the_queue(broker):
    broker.declare_queue(broker.inbound)
    broker.publish(broker.inbound, inbound_message("2001-01"), message_id="keep-me")
    broker.publish(broker.inbound, inbound_message("2002-01"), message_id="next")
    adapter = adapter_for(broker, exchange="", inbound_queue=broker.inbound)
    with pytest.raises(RuntimeError):
        adapter.poll_updates(Recorder(fail=True))  # the poll stops at the first failure
    adapter.close()
    POOL.close_all()
    assert broker.count(broker.inbound) == 2
    receive = Recorder()
    adapter = adapter_for(broker, exchange="", inbound_queue=broker.inbound, max_inbound_per_poll=1)
    assert adapter.poll_updates(receive) == 1  # bounded per poll
    assert adapter.poll_updates(receive) == 1
    assert adapter.poll_updates(receive) == 0
    adapter.close()
    assert sorted(u.order_id for u in receive.updates) == ["2001-01", "2002-01"]


def test_no_inbound_queue_means_nothing_to_poll(broker):
    assert adapter_for(broker).poll_updates(Recorder()) == 0
