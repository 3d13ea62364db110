"""A real RabbitMQ: the broker at HUB_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2F).

Each test gets its own exchange and queues (unique names, deleted afterwards). Without a broker
the tests are skipped, except when HUB_REQUIRE_SERVERS=1 (CI), where they fail.
"""
import uuid
from urllib.parse import urlsplit

import pika
import pytest

# `rabbitmq` (the broker's URL, skipped or failed when it does not answer) is a shared fixture.


class Broker:
    """A direct connection of the test's own, to set up and inspect exchanges and queues."""

    def __init__(self, url):
        self.url = url
        parts = urlsplit(url)
        self.user, self.password = parts.username, parts.password
        self.adapter_url = f"{parts.scheme}://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"test.orders.{suffix}"
        self.queue = f"test.erp.{suffix}"
        self.inbound = f"test.inbound.{suffix}"
        self.dlx = f"test.dlx.{suffix}"
        self.dead = f"test.dead.{suffix}"
        self.exchanges, self.queues = [], []
        self.connect()

    def connect(self):
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()

    def declare_exchange(self, name, kind="direct"):
        self.channel.exchange_declare(name, kind, durable=True)
        self.exchanges.append(name)

    def declare_queue(self, name, *, bind_to=None, routing_key="", arguments=None):
        self.channel.queue_declare(name, durable=True, arguments=arguments)
        self.queues.append(name)
        if bind_to is not None:
            self.channel.queue_bind(name, bind_to, routing_key)

    def publish(self, queue, body, **properties):
        self.channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **properties))

    def drain(self, queue):
        """Every message now in `queue` as (properties, body), acknowledged."""
        messages = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, body))

    def count(self, queue):
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def cleanup(self):
        try:
            try:
                self.connection.close()
            except Exception:
                pass
            self.connect()  # a fresh one: a broker restart may have left the old one half-dead
            for queue in self.queues:
                self.channel.queue_delete(queue)
            for exchange in self.exchanges:
                self.channel.exchange_delete(exchange)
        finally:
            if self.connection.is_open:
                self.connection.close()


@pytest.fixture
def broker(rabbitmq):
    b = Broker(rabbitmq)
    yield b
    b.cleanup()


@pytest.fixture(autouse=True)
def _empty_pool():
    """Pooled connections are per process: start and end each test with none."""
    from erp_plugins.amqp.adapter import POOL

    POOL.close_all()
    yield
    POOL.close_all()
