"""The amqp adapter through the real dispatcher: orders from the (mocked) VTEX feed reach a real
RabbitMQ queue once each, over one pooled connection for the whole batch."""
import json
import uuid

import pytest

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import AdapterBinding, OrderSync, SyncStatus
from tests.fake_feed import feed_item

pika = pytest.importorskip("pika", reason="the amqp extra is not installed")
pytestmark = pytest.mark.django_db


@pytest.fixture
def amqp_queue(rabbitmq):
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    channel = connection.channel()
    exchange, queue = f"test.dispatch.{uuid.uuid4().hex[:8]}", f"test.erp.{uuid.uuid4().hex[:8]}"
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange, "#")
    yield exchange, queue, channel
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()


def test_each_order_is_published_once_over_one_connection_per_batch(account, feed, oms, amqp_queue):
    from erp_plugins.amqp.adapter import POOL

    POOL.close_all()
    exchange, queue, channel = amqp_queue
    binding = AdapterBinding(account=account, adapter_key="amqp", name="Message queue")
    binding.apply_settings({"url": "amqp://guest@127.0.0.1:5672/%2F", "password": "guest", "exchange": exchange,
                            "routing_key": "{account}.{action}"})
    binding.save()
    order_ids = [f"{7000 + n}-01" for n in range(6)]
    for oid in order_ids:
        oms.add(oid)
        feed.add(feed_item(oid))
    assert run_feed_cycle(account).ok
    dispatch_due(budget=30)
    assert set(OrderSync.objects.filter(binding=binding).values_list("status", flat=True)) == {SyncStatus.SUCCEEDED}
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((method.routing_key, properties.message_id, json.loads(body)))
    assert sorted(m[2]["order"]["order_id"] for m in messages) == order_ids  # once each
    assert len({m[1] for m in messages}) == len(order_ids)
    assert {m[0] for m in messages} == {f"{account.account_name}.send"}
    assert POOL.idle_count() == 1  # the batch's deliveries shared one connection, kept for the next batch
    POOL.close_all()
