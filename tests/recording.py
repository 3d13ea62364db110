"""The recording adapter plugin (adapters `rec_a` and `rec_b` that record what they receive; fixtures:
tests/shared_fixtures.py), and a recording `receive` for adapters that poll the ERP for updates."""
import threading

from integration.plugins import UpdateReceipt, hookimpl
from integration.plugins.contract import (
    CANCEL,
    SEND,
    STATUS,
    Adapter,
    Delivery,
    PermanentError,
    TransientError,
)


class Recorder:
    """What the test adapters received, and what they should do next."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []           # (adapter key, action, order id, idempotency key)
        self.script = {}          # adapter key -> list of exceptions to raise before succeeding
        self.always = {}          # adapter key -> exception raised on every call

    def record(self, key, action, order, idem):
        with self.lock:
            self.calls.append((key, action, order.order_id, idem))
            if key in self.always:
                raise self.always[key]
            queue = self.script.get(key) or []
            if queue:
                raise queue.pop(0)
        return Delivery(reference=f"{key}-{order.order_id}", request_excerpt=f"sent {order.order_id}")

    def count(self, key=None, action=SEND):
        return sum(1 for c in self.calls if (key is None or c[0] == key) and c[1] == action)


RECORDER = Recorder()


def _adapter(key_):
    class RecordingAdapter(Adapter):
        key = key_
        label = f"Recording adapter {key_}"
        actions = frozenset({SEND, CANCEL, STATUS})

        def send_order(self, order, raw, idempotency_key):
            return RECORDER.record(self.key, SEND, order, idempotency_key)

        def cancel_order(self, order, raw, idempotency_key):
            return RECORDER.record(self.key, CANCEL, order, idempotency_key)

        def status_changed(self, order, raw, state, idempotency_key):
            return RECORDER.record(self.key, f"{STATUS}:{state}", order, idempotency_key)

    return RecordingAdapter


class RecordingPlugin:
    @hookimpl
    def erp_adapters(self):
        return [_adapter("rec_a"), _adapter("rec_b")]


class UpdateReceiver:
    """The hub's `receive` for an adapter's poll_updates, played by a list: accepts every update
    except the orders in `refuse`; `fail` plays a database that is down."""

    def __init__(self, refuse=(), fail=False):
        self.updates, self.refuse, self.fail = [], set(refuse), fail

    def __call__(self, update):
        if self.fail:
            raise RuntimeError("database is down")
        self.updates.append(update)
        if update.order_id in self.refuse:
            return UpdateReceipt(accepted=False, status="rejected", error="body.invoiceValue: expected an amount")
        return UpdateReceipt(accepted=True, status="queued", update_id=len(self.updates))


__all__ = ["PermanentError", "TransientError"]
