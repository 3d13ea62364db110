"""The recording adapter plugin and the fixtures that drive the pipeline against fake VTEX endpoints."""
import threading

import pytest

from integration.models import AdapterBinding
from integration.plugins import hookimpl
from integration.plugins.contract import CANCEL, SEND, STATUS, Adapter, Delivery, PermanentError, TransientError
from integration.plugins.manager import get_registry
from tests.fake_feed import FakeFeed
from tests.fake_oms import FakeOms


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


@pytest.fixture
def recorder():
    registry = get_registry()
    registry.register(RecordingPlugin(), "test-recording-plugin")
    global RECORDER
    RECORDER.__init__()
    yield RECORDER
    registry.unregister("test-recording-plugin")


@pytest.fixture
def bindings(account, recorder):
    a = AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="A")
    b = AdapterBinding.objects.create(account=account, adapter_key="rec_b", name="B")
    return a, b


@pytest.fixture
def feed(vtex):
    return FakeFeed(vtex)


@pytest.fixture
def oms(vtex):
    return FakeOms(vtex)


@pytest.fixture(autouse=True)
def inline_dispatch(settings):
    # Under the `db` fixture each test is one transaction that other threads cannot see.
    settings.DISPATCH_CONCURRENCY = 1
    settings.SYNC_BACKOFF_JITTER = 0


__all__ = ["PermanentError", "TransientError"]
