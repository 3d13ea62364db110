"""A minimal third-party adapter plugin: echoes orders back, records observer calls."""
from integration.plugins import SEND, Adapter, Delivery, Setting, hookimpl

# Observer calls, for tests: (hook name, argument) tuples.
EVENTS = []


class SampleEchoAdapter(Adapter):
    key = "sample_echo"
    label = "Sample echo (test fixture)"
    actions = frozenset({SEND})
    settings = (Setting("prefix", "Reference prefix", default="echo-"),)

    def send_order(self, order, raw, idempotency_key):
        return Delivery(reference=self.config["prefix"] + order.order_id, detail=f"echoed {idempotency_key}")


@hookimpl
def erp_adapters():
    return [SampleEchoAdapter]


@hookimpl
def sync_succeeded(sync):
    EVENTS.append(("sync_succeeded", sync))
