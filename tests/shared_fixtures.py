"""The fixtures every test package shares, registered for the whole run by the root conftest.py.

- Stores: `make_account`, `account`.
- VTEX over HTTP (`responses`): `vtex`, and on it `feed` (the orders feed), `oms` (orders and
  start-handling), `vtex_updates` (`oms` plus the way back's invoice, tracking and cancel calls).
- The recording adapters `rec_a`/`rec_b` (tests/recording.py): `recorder`, `bindings`, and
  `inline_dispatch`, which a package's conftest turns on for all its tests.
- Operator records: `make_binding`, `make_hub_order`, `make_sync` (plain functions, also imported),
  `binding`, the Operators group and an operator's logged-in client, `handled_order`.
- Real processes on loopback: `serve_sandbox` (a VTEX sandbox for one store), `sandbox` and
  `sandbox_store` (the end-to-end store), `erp` (a LoopbackERP), `subprocess_database_url()`.

A package's conftest.py or a module may define a fixture of the same name: it wins there.
"""
import importlib
import os
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.apps import apps as global_apps
from django.utils import timezone

from integration.models import (
    Account, AdapterBinding, AttemptOutcome, Order, OrderSync, StartHandlingState, SyncAttempt, SyncStatus,
)
from tests.fake_feed import FakeFeed
from tests.fake_oms import FakeOms, make_order
from tests.fake_vtex_updates import FakeVtexUpdates
from tests.recording import RECORDER, RecordingPlugin
from vtex_sandbox import LoopbackERP, Sandbox, SandboxServer

# ---------------------------------------------------------------------------------------------- stores


@pytest.fixture
def make_account(db):
    def make(**kw):
        defaults = dict(name="Test store", account_name="teststore", app_key="vtexappkey-teststore-ABCDEF",
                        api_base_url="https://teststore.vtexcommercestable.com.br")
        defaults.update(kw)
        token = defaults.pop("app_token", "test-app-token-SECRET-123")
        account = Account(**defaults)
        account.app_token = token
        account.save()
        return account

    return make


@pytest.fixture
def account(make_account):
    return make_account()


# ------------------------------------------------------------------------------------ VTEX over HTTP


@pytest.fixture
def vtex():
    """VTEX mocked over HTTP: every request the code sends must be registered here."""
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def feed(vtex):
    return FakeFeed(vtex)


@pytest.fixture
def oms(vtex):
    return FakeOms(vtex)


@pytest.fixture
def vtex_updates(vtex):
    """The way back's VTEX: FakeOms plus the invoice, tracking, delivery and cancel calls; every
    request the hub sends is checked against VTEX's published spec."""
    fake = FakeVtexUpdates(vtex)
    yield fake
    assert fake.spec_violations == [], "the hub sent requests VTEX's spec does not allow"


# ---------------------------------------------------------------------------- the recording adapters


@pytest.fixture
def recorder():
    from integration.plugins.manager import get_registry

    registry = get_registry()
    registry.register(RecordingPlugin(), "test-recording-plugin")
    RECORDER.__init__()
    yield RECORDER
    registry.unregister("test-recording-plugin")


@pytest.fixture
def bindings(account, recorder):
    a = AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="A")
    b = AdapterBinding.objects.create(account=account, adapter_key="rec_b", name="B")
    return a, b


@pytest.fixture
def inline_dispatch(settings):
    """Dispatch in the test's own thread: under the `db` fixture each test is one transaction that
    other threads cannot see. No jitter, so retry times are exact."""
    settings.DISPATCH_CONCURRENCY = 1
    settings.SYNC_BACKOFF_JITTER = 0


# ----------------------------------------------------------------------------------- operator records

OPERATORS = "Operators"


def ensure_operators_group():
    """The group comes from a data migration; a transactional test's flush empties auth_group."""
    migration = importlib.import_module("integration.migrations.0002_operators_group")
    migration.create_operators_group(global_apps, None)
    from django.contrib.auth.models import Group

    from integration.permissions import ensure_operators_group as after_migrate
    after_migrate()  # what every `migrate` adds to the group (permissions of later models and actions)

    return Group.objects.get(name=OPERATORS)


@pytest.fixture
def operators_group(db):
    return ensure_operators_group()


@pytest.fixture
def operator(django_user_model, operators_group):
    user = django_user_model.objects.create_user("olga", "olga@example.com", "olga-password-123", is_staff=True)
    user.groups.add(operators_group)
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def enqueued(monkeypatch):
    """enqueue_dispatch calls, recorded instead of sent to the broker."""
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None, dedupe=True: calls.append(account_id))
    return calls


def make_binding(account, name="ERP", gates=True, url="https://erp.example.com/orders"):
    binding = AdapterBinding(account=account, adapter_key="webhook", name=name, gates_start_handling=gates,
                             settings={"url": url, "timeout": 5})
    binding.secret_settings = {"bearer_token": "erp-bearer-SECRET-987"}
    binding.save()
    return binding


@pytest.fixture
def binding(account):
    """A webhook binding (tests/erp_api overrides it with a recording one)."""
    return make_binding(account)


def make_hub_order(account, order_id, *, status="ready-for-handling", snapshot=True, **kw):
    return Order.objects.create(account=account, order_id=order_id, vtex_status=status,
                                snapshot=make_order(order_id, status) if snapshot else None, **kw)


def make_sync(order, binding, status=SyncStatus.FAILED, *, attempts=None, error="ERP answered 500", action="send", **kw):
    if attempts is None:
        attempts = 0 if status == SyncStatus.PENDING else 3
    kw.setdefault("next_attempt_at", timezone.now() + timedelta(hours=1) if status == SyncStatus.PENDING else None)
    sync = OrderSync.objects.create(order=order, binding=binding, action=action, status=status, attempts=attempts,
                                    last_error=error if status in (SyncStatus.FAILED, SyncStatus.PENDING) else "",
                                    hold_reason="VTEX says the order is 'handling'" if status == SyncStatus.HELD else "",
                                    **kw)
    for n in range(1, min(attempts, 3) + 1):
        SyncAttempt.objects.create(sync=sync, number=n, duration_ms=40 + n, outcome=AttemptOutcome.TRANSIENT, error=error,
                                   request_excerpt=f'POST /orders {{"orderId": "{order.order_id}"}}',
                                   response_excerpt="HTTP 500 <html>oops</html>")
    return sync


@pytest.fixture
def handled_order(account, oms):
    """An order the hub delivered and VTEX moved to handling (`oms` as the requesting test defines it)."""
    oms.add("1001-01", "handling")
    return Order.objects.create(account=account, order_id="1001-01", vtex_status="handling",
                                start_handling_state=StartHandlingState.DONE)


# ------------------------------------------------------------------------------ processes on loopback

APP_KEY = "vtexappkey-e2e-SANDBOX"
APP_TOKEN = "e2e-sandbox-token-123456"


@contextmanager
def running_sandbox(account_name, app_key, app_token, *, seed, **account_options):
    """A VTEX sandbox with one store, served on a free loopback port; `sb.url` is its base URL."""
    sb = Sandbox(seed=seed)
    sb.add_account(account_name, app_key=app_key, app_token=app_token, **account_options)
    server = SandboxServer(sb, host="127.0.0.1", port=0).start()
    sb.url = server.url
    try:
        yield sb
    finally:
        server.stop()
        sb.close()


@pytest.fixture
def serve_sandbox():
    """Start a sandbox for one store: `serve_sandbox("opsstore", APP_KEY, APP_TOKEN, seed=5)`; stopped after the test."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda *args, **kw: stack.enter_context(running_sandbox(*args, **kw))


@pytest.fixture
def sandbox(serve_sandbox):
    # A short visibility timeout: an item whose commit failed comes back within the test.
    return serve_sandbox("e2estore", APP_KEY, APP_TOKEN, seed=11, feed_config={
        "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
        "queue": {"visibilityTimeoutInSeconds": 2, "messageRetentionPeriodInSeconds": 345600}})


@pytest.fixture
def erp():
    receiver = LoopbackERP(port=0).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sandbox_store(sandbox):
    account = Account(name="E2E", account_name="e2estore", app_key=APP_KEY, api_base_url=sandbox.url)
    account.app_token = APP_TOKEN
    account.save()
    return account


def subprocess_database_url():
    """A DATABASE_URL for a subprocess that must use this test's database."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


# --- real servers (RabbitMQ, sshd) ----------------------------------------------------------------
AMQP_URL = os.environ.get("HUB_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def server_missing(message):
    """Skip a test whose real server is missing, except in CI (HUB_REQUIRE_SERVERS=1), where it fails."""
    if os.environ.get("HUB_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{message} (HUB_REQUIRE_SERVERS=1: a missing server is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def rabbitmq():
    """The URL of a RabbitMQ that answers (HUB_AMQP_URL, default guest@127.0.0.1:5672)."""
    pika = pytest.importorskip("pika", reason="the amqp extra is not installed")
    try:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL + "?connection_attempts=1&socket_timeout=3"))
    except Exception as exc:
        server_missing(f"no RabbitMQ at {AMQP_URL.split('@')[-1]}: {exc}")
    connection.close()
    return AMQP_URL


# The throw-away OpenSSH server (session-wide), for the sftp adapter and the end-to-end runs.
from tests.ssh_server import SshServer, ssh_server  # noqa: E402,F401
