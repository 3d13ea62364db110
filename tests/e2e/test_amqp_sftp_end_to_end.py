"""The round trip through a message queue and SFTP, against the VTEX sandbox over real HTTP, a real
RabbitMQ and a real OpenSSH sshd: a store bound to BOTH an amqp and an sftp binding delivers each
sandbox order once to the RabbitMQ queue and once as a file in the SFTP folder; the ERP then sends
the invoices back, half as messages on the amqp inbound queue and half as files in the SFTP
inbound folder (a few of each twice, as an ERP that retries does), and each reaches VTEX as an
invoice exactly once (the sandbox counts the invoice calls that took effect, per order)."""
import io
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest

from integration.models import AdapterBinding, Order, OrderSync, StartHandlingState, SyncStatus, UpdateStatus, VtexUpdate
from integration.pipeline.adapter_updates import poll_all
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.pipeline.outbox import send_due
from tests.shared_fixtures import APP_KEY

pika = pytest.importorskip("pika", reason="the amqp extra is not installed")
paramiko = pytest.importorskip("paramiko", reason="the sftp extra is not installed")

ORDERS = 20  # 10 invoices back through each channel
RETRIED = 2  # per channel: sent twice by the ERP


@pytest.fixture
def amqp_erp(rabbitmq):
    """The ERP's side of the broker: an exchange the hub publishes orders to, the ERP's queue bound
    to it, and the inbound queue the ERP puts invoices on (unique names, deleted afterwards)."""
    suffix = uuid.uuid4().hex[:10]
    names = {"exchange": f"e2e.orders.{suffix}", "queue": f"e2e.erp.{suffix}", "inbound": f"e2e.inbound.{suffix}"}
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    channel = connection.channel()
    channel.exchange_declare(names["exchange"], "topic", durable=True)
    channel.queue_declare(names["queue"], durable=True)
    channel.queue_bind(names["queue"], names["exchange"], "#")
    channel.queue_declare(names["inbound"], durable=True)
    yield names, channel
    for queue in (names["queue"], names["inbound"]):
        channel.queue_delete(queue)
    channel.exchange_delete(names["exchange"])
    connection.close()


@pytest.fixture
def sftp_erp(ssh_server):
    """The ERP's side of the SFTP server: an outbound folder the hub writes orders to, an inbound
    folder the ERP leaves invoices in, and the ERP's own SFTP session (as the same user)."""
    folders = {"out": ssh_server.folder("outbound"), "in": ssh_server.folder("inbound")}
    transport = paramiko.Transport((ssh_server.host, ssh_server.port))
    transport.connect(username=ssh_server.user, password=ssh_server.password)
    session = paramiko.SFTPClient.from_transport(transport)
    yield folders, session
    session.close()
    transport.close()


@pytest.fixture(autouse=True)
def _empty_pools():
    from erp_plugins.amqp.adapter import POOL as AMQP_POOL
    from erp_plugins.sftp.adapter import POOL as SFTP_POOL

    AMQP_POOL.close_all()
    SFTP_POOL.close_all()
    yield
    AMQP_POOL.close_all()
    SFTP_POOL.close_all()


def bind(account, key, name, settings):
    binding = AdapterBinding(account=account, adapter_key=key, name=name)
    binding.apply_settings(settings)
    binding.save()
    return binding


def invoice_of(sandbox, order_id):
    order = sandbox.order(APP_KEY, order_id)
    items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
    return {"kind": "invoice", "orderId": order_id,
            "body": {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": f"NF-{order_id}",
                     "invoiceValue": order["value"], "items": items}}


def until(done, step, timeout, what):
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        step()
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_orders_go_out_by_queue_and_sftp_and_invoices_come_back_by_both_once_each(
        sandbox, sandbox_store, rabbitmq, amqp_erp, ssh_server, sftp_erp, settings):
    settings.SYNC_BACKOFF_SECONDS = [1]
    settings.SYNC_BACKOFF_JITTER = 0
    settings.VTEX_RATE_LIMITS = {**settings.VTEX_RATE_LIMITS, "*": 60000}
    names, channel = amqp_erp
    folders, erp_sftp = sftp_erp
    broker = urlsplit(rabbitmq)
    amqp = bind(sandbox_store, "amqp", "Message queue", {
        "url": f"{broker.scheme}://{broker.username}@{broker.hostname}:{broker.port}{broker.path}",
        "password": broker.password, "exchange": names["exchange"], "inbound_queue": names["inbound"]})
    sftp = bind(sandbox_store, "sftp", "SFTP", {
        "host": ssh_server.host, "port": ssh_server.port, "username": ssh_server.user, "password": ssh_server.password,
        "host_key_fingerprint": ssh_server.fingerprint, "remote_directory": str(folders["out"]),
        "inbound_directory": str(folders["in"]), "settle_seconds": 0})
    order_ids = sandbox.create_orders(APP_KEY, ORDERS)

    # Out: each order to both bindings; start-handling once both have it.
    until(lambda: Order.objects.filter(start_handling_state=StartHandlingState.DONE).count() == ORDERS,
          lambda: (run_feed_cycle(sandbox_store, budget=10), dispatch_due(budget=10)), 120, "every order delivered and start-handled")
    assert OrderSync.objects.filter(binding__in=[amqp, sftp], action="send", status=SyncStatus.SUCCEEDED).count() == 2 * ORDERS
    messages = []
    while True:
        method, properties, body = channel.basic_get(names["queue"], auto_ack=True)
        if method is None:
            break
        messages.append((properties.message_id, properties.headers.get("x-hub-event"), json.loads(body)))
    assert sorted(m[2]["order"]["order_id"] for m in messages) == sorted(order_ids)  # once each
    assert len({m[0] for m in messages}) == ORDERS and {m[1] for m in messages} == {"order.send"}
    files = sorted(p.name for p in folders["out"].iterdir())
    assert files == sorted(f"e2estore-{oid}-send.json" for oid in order_ids)  # once each, no temp file left
    for name in files:
        assert json.loads((folders["out"] / name).read_text())["order"]["order_id"] in name
    assert sandbox.stats()["start_handling_ok"] == {oid: 1 for oid in order_ids}

    # Back: the first half by the queue, the second half by the inbound folder; RETRIED of each twice.
    by_queue, by_folder = order_ids[: ORDERS // 2], order_ids[ORDERS // 2:]
    for order_id in by_queue + by_queue[:RETRIED]:
        channel.basic_publish("", names["inbound"], json.dumps(invoice_of(sandbox, order_id)).encode(),
                              pika.BasicProperties(delivery_mode=2, message_id=f"erp-{order_id}", content_type="application/json"))
    for n, order_id in enumerate(by_folder + by_folder[:RETRIED]):
        path = f"{folders['in']}/invoice-{order_id}-{n}.json"
        erp_sftp.putfo(io.BytesIO(json.dumps(invoice_of(sandbox, order_id)).encode()), path + ".part")
        erp_sftp.posix_rename(path + ".part", path)  # complete before it is visible, as the adapter's docs ask
    until(lambda: VtexUpdate.objects.filter(status=UpdateStatus.SENT).count() == ORDERS
          and not VtexUpdate.objects.exclude(status=UpdateStatus.SENT).exists(),
          lambda: (poll_all(), send_due(budget=10)), 120, "every invoice sent to VTEX")

    stats = sandbox.stats()
    assert stats["invoices_ok"] == {oid: 1 for oid in order_ids}  # exactly once each, the retried ones too
    assert stats["calls"]["invoice"] == ORDERS
    assert {stats["statuses"][oid] for oid in order_ids} == {"invoiced"}
    for oid in order_ids:
        [package] = sandbox.order(APP_KEY, oid)["packageAttachment"]["packages"]
        assert package["invoiceNumber"] == f"NF-{oid}"
    sources = dict(VtexUpdate.objects.values_list("order__order_id", "source_detail"))
    assert all(f"amqp message erp-{oid}" in sources[oid] for oid in by_queue)
    assert all("sftp file" in sources[oid] and f"invoice-{oid}-" in sources[oid] for oid in by_folder)
    assert channel.queue_declare(names["inbound"], passive=True).method.message_count == 0  # all acknowledged
    assert sorted(p.name for p in folders["in"].iterdir()) == ["processed"]  # nothing rejected, nothing left
    assert len(list((folders["in"] / "processed").iterdir())) == len(by_folder) + RETRIED
    assert Order.objects.filter(vtex_status="invoiced").count() == ORDERS
