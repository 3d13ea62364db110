"""Built-in plugin: publish each order to a RabbitMQ (AMQP 0-9-1) exchange and consume invoices,
tracking and cancellations back from a queue. Needs the `amqp` extra (pika)."""
from integration.plugins import PluginUnavailable, hookimpl

try:
    import pika  # noqa: F401  (imported here so that a missing extra is reported, not a traceback)
except ImportError as exc:
    raise PluginUnavailable(
        f"the amqp adapter needs the 'amqp' extra: pip install 'vtex-order-hub[amqp]' ({exc})"
    ) from exc

from erp_plugins.amqp.adapter import AmqpAdapter  # noqa: E402


@hookimpl
def erp_adapters():
    return [AmqpAdapter]
